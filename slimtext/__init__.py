"""slimtext core: the parts shared by training and serving (no torch, no web framework)."""
