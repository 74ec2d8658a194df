"""Interactive labs: each a self-contained QWidget tab built on the simulator (optimizer race, schedule designer)."""
