"""Networking: contacts from the mailbox and imports, stages cold → warming → warm, and
the weekly engagement tasks (never an ask before a contact is warm)."""
