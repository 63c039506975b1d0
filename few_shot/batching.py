"""Batches of token-id rows: right-padding (keras.utils.pad_sequences) and length-sorted batches,
so that a batch pads to a similar length."""
import numpy as np


def pad_batch(sequences, pad_id=0, length=None):
    """List of id lists -> int32 array [batch, length] (default: the longest), right-padded and cut."""
    from keras.utils import pad_sequences
    return pad_sequences(list(sequences), maxlen=length, dtype="int32", padding="post", truncating="post",
                         value=pad_id)


def length_sorted_batches(lengths, batch_size):
    """Row indices of each batch, shortest rows first."""
    order = np.argsort(lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
