"""Testing (staging): the production settings."""

from config.prod import *
