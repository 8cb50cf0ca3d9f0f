"""Local patches of third-party packages, each applied explicitly by the code that needs it."""
