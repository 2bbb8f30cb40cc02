"""The data layer: `Dataset` (interactions, item text, id maps), loaders for every supported format, named
seeded splits with their content hash and disk cache, and the per-process dataset/split cache.

Belongs here: anything that turns files into a `Split`. May import: `genrec.common` only.
"""
