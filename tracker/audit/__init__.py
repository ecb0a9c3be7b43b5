"""The audit trail: who saw or changed what, and the HMAC chains over it and the events."""
