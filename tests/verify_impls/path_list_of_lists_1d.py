"""A pure-Python conv1d forward that builds its output as nested lists and returns them as they are."""
ENTRY = "conv1d"
OP = "forward"
DIMS = 1
CHANNELS_LAST = False
PER_DIM = False
PADDING_FORMS = ("int",)
EXPECT = "type"
WHY = "returns a list of lists (N x F x L_out) of floats, not an ndarray"
WITNESS = dict(input_shape=(2, 2, 6), weight_shape=(2, 2, 3), stride=1)


def conv1d(x, w, b, stride=1):
    N, C, L = x.shape
    F, _, K = w.shape
    out = []
    for n in range(N):
        rows = []
        for f in range(F):
            rows.append([float(b[f] + sum(w[f, c, k] * x[n, c, i * stride + k] for c in range(C) for k in range(K)))
                         for i in range((L - K) // stride + 1)])
        out.append(rows)
    return out
