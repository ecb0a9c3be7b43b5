"""Bulk actions: one step recorded on each of several pathways, all or nothing."""
