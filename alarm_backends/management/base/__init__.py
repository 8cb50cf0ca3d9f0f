"""Consul registration of long-running commands and the dispatch of targets over the registered hosts."""
