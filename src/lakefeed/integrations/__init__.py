"""Integrations with other systems; each module imports its system on first use (``lakefeed.integrations.ray``)."""
