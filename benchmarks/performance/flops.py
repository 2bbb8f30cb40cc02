"""The model-FLOP count of a ColaRec training step: the numerator of every MFU row (`train` section).

`tests/test_perf_paths.py` checks `colarec_forward_flops` against a hand count and, exactly, against the matmul
FLOPs `torch.utils.flop_counter.FlopCounterMode` records on one forward of `ColaRecNet.losses`.
"""

from __future__ import annotations


def colarec_forward_flops(t5, K: int, length: int, n_users: int, user_len: int, item_len: int,
                          n_item_rows: int | None = None, n_index_rows: int | None = None) -> int:
    """Matmul FLOPs (2 per multiply-add) of one forward pass of `ColaRecNet.losses` on a padded batch.

    Per sample the step runs 4 encoder passes (user input of padded length `user_len`; positive, negative and
    contrastive-positive items, collated together at padded length `item_len`) and 3 decoder passes over the
    `length` GID positions (L_rec cross-attending to the user states, L_index to the positive and negative item
    states). With d = d_model, i = num_heads * d_kv, f = d_ff (x 3/2 for a gated FFN) and K+1 head classes:

        encoder layer, L tokens:      2 L d i * 4 (q, k, v, o)  + 2 L^2 i * 2 (scores, weighted sum)  + 2 L d f * 2
        decoder layer, T=length, S enc tokens:
                                      2 T d i * 4 + 2 T^2 i * 2           (self-attention)
                                    + 2 T d i * 2 + 2 S d i * 2 + 2 T S i * 2   (cross: q, o; k, v; attention)
                                    + 2 T d f * 2                          (FFN)
        heads:                        2 T d (K+1)

    forward = n_users * enc(user_len) + n_item_rows * enc(item_len) + n_users * dec(user_len)
              + n_index_rows * dec(item_len) + heads for every decoder pass,
    with n_item_rows = 3 n_users and n_index_rows = 2 n_users by default. Padded positions are counted (the
    matmuls run on them); embeddings, layer norms, softmax, relative position bias, the d^-0.5 scale, the
    losses' dot products and cross-entropy are not matmuls and are left out (well under 1% here). One training
    step (forward + backward) is counted as 3 x forward.
    """
    d, i, f = t5.d_model, t5.num_heads * t5.d_kv, t5.d_ff
    ffn = 3 if getattr(t5, "is_gated_act", False) else 2
    n_item_rows = 3 * n_users if n_item_rows is None else n_item_rows
    n_index_rows = 2 * n_users if n_index_rows is None else n_index_rows

    def enc(L: int) -> int:
        return t5.num_layers * (2 * L * d * i * 4 + 2 * L * L * i * 2 + 2 * L * d * f * ffn)

    def dec(S: int) -> int:
        T = length
        layer = (2 * T * d * i * 4 + 2 * T * T * i * 2 + 2 * T * d * i * 2 + 2 * S * d * i * 2 + 2 * T * S * i * 2
                 + 2 * T * d * f * ffn)
        return t5.num_decoder_layers * layer + 2 * T * d * (K + 1)

    return (n_users * enc(user_len) + n_item_rows * enc(item_len) + n_users * dec(user_len)
            + n_index_rows * dec(item_len))


def colarec_step_flops(net, batch: dict, w: dict) -> int:
    """Model FLOPs of one training step (3 x forward) on `batch` as `TrainData.batch` builds it."""
    b = len(batch["user"])
    n_items = len(batch["items"]) if (w["index_task"] or w["bpr"] or w["contrastive"]) else 0
    fwd = colarec_forward_flops(net.t5_config, net.K, net.length, b, batch["user"].ids.shape[1],
                                batch["items"].ids.shape[1], n_item_rows=n_items,
                                n_index_rows=2 * b if w["index_task"] else 0)
    return 3 * fwd
