"""Quality feedback on calls, joined to its call: what a later score replaces, exactly (pure)."""
