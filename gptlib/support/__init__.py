"""Plumbing a reader of the chapter need not open: files written atomically, downloads, checks
of weight and SMS files (and the one owner of the data's cache path), the device, your own CSV
data, noise statistics. Everything here is a leaf: it imports nothing from the rest of gptlib."""
