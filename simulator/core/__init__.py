"""The bottom layer: our exception types, the observer signal, number formatting. Imports nothing of ours."""
