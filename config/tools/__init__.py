"""Pure helpers that turn environment variables into typed settings (no I/O)."""
