"""Generative-ID machinery shared by the generative recommenders (ColaRec, TIGER): ID sets per item with their
diagnostics and cache (`gid`), the train-only item embeddings they are built from (`embeddings`), the balanced
clusterer (`balanced`), and the trie of valid IDs with the constrained beam search and its exhaustive reference
(`beam`).

Belongs here: anything a model that generates item IDs token by token needs, independent of its network. May
import: `genrec.common`, `genrec.data`, `genrec.evaluation` (and other models through the registry only).
"""
