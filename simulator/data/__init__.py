"""Data sets: toy 2-D sets, the bundled digits, splits, standardisation and augmentation."""
