"""The one-command pipeline behind ``depthshrink run`` (see :mod:`.stages`)."""
