"""The surgeon's queue: pathways with steps recorded since the last sign-off."""
