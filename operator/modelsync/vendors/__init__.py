"""One package per registry: everything of one vendor (schema, mapping, client, simulator) in one folder."""
