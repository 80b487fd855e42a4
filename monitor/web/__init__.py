"""The status page (#14): overview, route / mailbox and probe pages, served by the daemon."""
