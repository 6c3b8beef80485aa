"""ModelSync."""
