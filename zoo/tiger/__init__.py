"""TIGER (Rajput et al., NeurIPS 2023): a T5 encoder-decoder that generates the next item's semantic ID (RQ-VAE
codes of its content, `zoo.genid.rqvae`) from the user's recent items. `model.py` (the registered `tiger`
model, config and presets), `samples.py` (semantic-ID tokens, every-prefix training samples, evaluation
histories), `network.py` (the T5 network; its decoder side and decoding kernels are ColaRec's).

Belongs here: what is TIGER's own (its inputs, network and model). Shared generative-ID machinery (ID builds,
tries, beam search) lives in `zoo.genid`; the training loop is `zoo.colarec.train.run`. May import:
`genrec.common`, `genrec.data`, `genrec.evaluation`, `zoo.genid`, `zoo.colarec`.
"""
