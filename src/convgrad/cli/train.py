"""``convgrad train``: train a LeNet-style CNN with convgrad's own gradients, on real digits.

By default the data are the 1797 8x8 handwritten digits that ship inside scikit-learn (no
download), split into training and test sets by class with a fixed seed (``--split-seed``);
``--data DIR`` reads MNIST-format IDX files instead, and ``--data mnist1d`` trains the
MNIST-1D paper's small 1-D CNN on its 40-sample signals (generated locally by the ``mnist1d``
package; 4000 training, 1000 test). Each epoch shows a progress bar, then the
loss and accuracy; at the end the test accuracy, pictures of the curves, of the
learned first-layer filters and of the held-out mistakes, and the weights (``weights.npz``,
for ``convgrad predict``).

No run is lost: ``--out`` is checked to be a writable folder before training, ``weights.npz``
is rewritten atomically after every epoch with what continuing needs (optimizer state, epoch,
random generator state, history), Ctrl-C says where the last complete epoch's weights are, and
``--resume DIR`` continues the run to the same final weights, bit for bit, as if uninterrupted.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from ..atomic import check_writable_folder
from .progress import tqdm_class
from .types import fraction, positive_float, positive_int

#: The default run: reaches >= 98 % test accuracy on the held-out digits for every seed tried.
DEFAULTS = dict(epochs=20, batch_size=32, lr=0.01, label_smoothing=0.1, test_fraction=0.2)
#: The flags that define a run (its result): saved with the weights, restored by --resume.
RUN_FLAGS = dict(epochs=20, batch_size=32, lr=0.01, seed=0, split_seed=0, test_fraction=0.2, data=None, limit=None)
#: ``--data`` naming a data set rather than a folder
MNIST1D = "mnist1d"
#: MNIST-1D's defaults, where they differ (batch 100 as its authors'; 60 epochs: >= 94 % for every seed tried)
MNIST1D_DEFAULTS = dict(epochs=60, batch_size=100)


def data_source(text: str) -> str | Path:
    """``--data``: the word ``mnist1d`` names MNIST-1D; anything else is a folder (``./mnist1d`` for one of that name)."""
    return MNIST1D if text == MNIST1D else Path(text)


def register(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a CNN on the 8x8 digits (or MNIST IDX files, or MNIST-1D) with convgrad's gradients",
        description=(
            "Train a LeNet-style CNN with convgrad's own gradients. By default the data are the 1797 8x8 "
            "handwritten digits that ship inside scikit-learn (no download), split into training and test sets "
            "by class with a fixed seed; --data DIR reads MNIST-format IDX files instead; --data mnist1d trains the "
            "MNIST-1D paper's 1-D CNN on its 40-sample signals (generated locally, no download). Each epoch shows a "
            "progress bar (on a terminal), then the loss and accuracy; at the end the test accuracy, pictures of "
            "the curves, of the learned first-layer filters and of the test mistakes, and the weights (weights.npz, "
            "for `convgrad predict`), all in --out. weights.npz is rewritten after every epoch, so an interrupted "
            "run keeps its last complete epoch, and --resume DIR continues it."
        ),
    )
    # run-defining flags default to None: --resume tells "not given" (take the saved run's) from "given"
    p.add_argument("--epochs", type=positive_int, default=None,
                   help="passes over the training set (default 20; 60 for mnist1d)")
    p.add_argument("--batch-size", type=positive_int, default=None, help="images per step (default 32; 100 for mnist1d)")
    p.add_argument("--lr", type=positive_float, default=None, help="Adam's initial learning rate, cosine-decayed (default 0.01)")
    p.add_argument("--seed", type=int, default=None,
                   help="seeds the initial weights, the shuffling and dropout: same seed, same run (default 0)")
    p.add_argument("--split-seed", type=int, default=None, help="seeds the train/test split of the digits (default 0)")
    p.add_argument("--test-fraction", type=fraction, default=None,
                   help="share of each class held out for testing, when the data have no test set (default 0.2)")
    p.add_argument("--data", metavar="DIR|mnist1d", type=data_source, default=None,
                   help="folder with MNIST-format IDX files (train-images-idx3-ubyte, train-labels-idx1-ubyte, optional "
                        "t10k-* test files; .gz accepted) instead of the digits, or `mnist1d`: MNIST-1D's 40-sample "
                        "signals with the paper's 1-D CNN (needs convgrad[mnist1d]) (default: the digits)")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N training images (default: all)")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="the folder where weights.npz and the pictures are written; checked before training "
                        "(default ./out, or the --resume folder)")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="continue the run whose weights.npz is in DIR from its last complete epoch, with its "
                        "settings (default: a new run)")
    p.add_argument("--threads", type=positive_int, default=1,
                   help="threads for BLAS and for convgrad's worker threads (default 1: this network's matrix products are too small to gain from more, and "
                        "lose a lot when the cores are busy; needs threadpoolctl, installed with scikit-learn)")
    p.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="data-parallel: split each batch over a Dask LocalCluster of N worker processes (same steps as one "
                        "process; needs convgrad[dask]) (default: no cluster)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="data-parallel on an existing Dask cluster, e.g. tcp://10.0.0.5:8786 (one shard per worker) "
                        "(default: no cluster)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none anyway when the output is not a terminal)")
    p.add_argument("--json", action="store_true",
                   help='print one JSON line {"test_accuracy": ..., "epochs": ..., "seconds": ...} at the end '
                        "(the human-readable report goes to stderr)")
    p.set_defaults(func=run)


def load_data(args):
    """``(train, test, description)`` for the command-line arguments."""
    from ..nn import data

    if args.data is None:
        full = data.load_digits()
        source = "scikit-learn's 8x8 digits"
        test = None
    elif args.data == MNIST1D:
        full, test = data.load_mnist1d()
        source = "MNIST-1D (generated locally by the mnist1d package, the paper's configuration)"
    else:
        full, test = data.load_idx_dir(args.data)
        source = f"IDX files in {args.data}"
    if args.limit is not None:
        full = full.subset(np.arange(min(args.limit, len(full))))
    if test is None:
        train_index, test_index = data.stratified_split(full.labels, args.test_fraction, args.split_seed)
        if len(train_index) == 0 or len(test_index) == 0:
            raise ValueError(f"{len(full)} images are too few to split into training and test sets")
        train, test = full.subset(train_index), full.subset(test_index)
        source += f", split {len(train)}/{len(test)} by class (split seed {args.split_seed})"
    else:
        train = full
        source += f", {len(train)} training and {len(test)} test {'signals' if train.images.ndim == 3 else 'images'}"
    return train, test, source


def _progress_factory(epochs: int, total: int, enabled: bool, out):
    """A function giving each epoch's per-batch callback, and a closer; a tqdm bar on a terminal only."""
    tqdm = tqdm_class() if enabled else None
    state = {"bar": None}

    def factory(epoch: int):
        if tqdm is None:
            return None
        bar = tqdm(total=total, desc=f"epoch {epoch + 1:>{len(str(epochs))}}/{epochs}", unit="img", file=out,
                   leave=False, ncols=90, mininterval=0.1, disable=None,
                   bar_format="{desc} {bar} {n_fmt}/{total_fmt} img {elapsed}{postfix}")
        state["bar"] = bar

        def update(n: int, loss: float) -> None:
            bar.update(n)
            bar.set_postfix_str(f"loss {loss:.3f}", refresh=False)

        return update

    def close():
        if state["bar"] is not None:
            state["bar"].close()
            state["bar"] = None

    return factory, close


def _blas_threads(n: int):
    """A context limiting NumPy's BLAS to ``n`` threads (a no-op without threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(limits=n, user_api="blas")


def _settings(args, saved: dict | None) -> dict:
    """The run's defining settings: the flags given, else the resumed run's, else the defaults.

    With ``--resume``, a flag given with another value than the saved run's is an error: the
    run continues as it was started, or it would not be the same run.
    """
    settings = {}
    for name, default in RUN_FLAGS.items():
        given = getattr(args, name)
        if name == "data" and given not in (None, MNIST1D):
            given = given.resolve()  # saved absolute: --resume works from any folder
        if saved is not None:
            value = saved.get(name, default)
            if given is not None and str(given) != str(value):
                flag = "--" + name.replace("_", "-")
                raise ValueError(f"{flag}: the run in {args.resume} was started with {flag} {value}; --resume continues "
                                 f"it with its own settings (got {given}; start a new run with another --out instead)")
            settings[name] = value
        else:
            settings[name] = default if given is None else given
    if settings["data"] not in (None, MNIST1D):
        settings["data"] = Path(settings["data"])
    if saved is None and settings["data"] == MNIST1D:
        for name, default in MNIST1D_DEFAULTS.items():
            if getattr(args, name) is None:
                settings[name] = default
    return settings


def _saved_run(folder: Path):
    """``(model, meta, optimizer_state)`` of the run in ``folder`` for --resume; ValueError naming the flag."""
    from ..nn.checkpoint import load_checkpoint

    path = folder / "weights.npz"
    if not folder.is_dir():
        raise ValueError(f"--resume: {folder} is not a folder (expected the --out folder of an earlier `convgrad train`)")
    if not path.is_file():
        raise ValueError(f"--resume: {folder} has no weights.npz (expected the --out folder of an earlier `convgrad train`)")
    model, meta, optimizer_state = load_checkpoint(path)
    if "resume" not in meta or not optimizer_state:
        raise ValueError(f"--resume: {path} holds weights only, not the state needed to continue the run")
    return model, meta, optimizer_state


def run(args) -> int:
    from ..nn import Adam, CrossEntropyLoss
    from ..nn.checkpoint import save_lenet
    from ..nn.distributed import data_parallel
    from ..nn.models import CNN1dConfig, LeNetConfig, build_model, config_from_dict, count_parameters
    from ..nn.training import EpochResult, cosine_lr, fit
    from ..runtime import settings as runtime_settings
    from . import train_figures

    quiet = getattr(args, "quiet", False)
    report = sys.stderr if args.json else sys.stdout

    def say(*text) -> None:
        if not quiet:
            print(*text, file=report, flush=True)

    # everything that can be wrong is found before training: the flags, the saved run, the output folder, the data
    saved = _saved_run(args.resume) if args.resume is not None else None
    run_settings = _settings(args, saved[1]["resume"]["settings"] if saved else None)
    out = check_writable_folder(args.out or args.resume or Path("out"), "--out")
    run_args = type(args)(**{**vars(args), **run_settings})
    train, test, source = load_data(run_args)
    epochs, lr = run_settings["epochs"], run_settings["lr"]

    classes = int(max(train.labels.max(), test.labels.max())) + 1
    if train.images.ndim == 3:  # (N, 1, L) signals: the 1-D CNN
        config = CNN1dConfig(length=train.image_size[0], num_classes=max(classes, 2))
    else:
        config = LeNetConfig(image_size=train.image_size, num_classes=max(classes, 2))
    rng = np.random.default_rng(run_settings["seed"])
    model = build_model(config, rng=rng)  # the same generator then shuffles and draws dropout masks
    optimizer = Adam(model.parameters(), lr=lr)
    history: list = []
    if saved is not None:
        saved_model, meta, optimizer_state = saved
        if config_from_dict(meta["config"]) != config:
            raise ValueError(f"--resume: the network in {args.resume / 'weights.npz'} ({meta['config']}) does not fit "
                             f"these data ({config.to_dict()})")
        model.load_state_dict(saved_model.state_dict())
        optimizer.load_state_dict(optimizer_state)
        rng.bit_generator.state = meta["resume"]["rng"]
        history = [EpochResult(**r) for r in meta["resume"]["history"]]
    loss_fn = CrossEntropyLoss(label_smoothing=DEFAULTS["label_smoothing"])
    say(f"data: {source}")
    say(f"model: {count_parameters(model):,} parameters, {config.num_classes} classes, Adam lr {lr} "
        f"(cosine), batch {run_settings['batch_size']}, seed {run_settings['seed']}")
    if history:
        say(f"resuming after epoch {len(history)}/{epochs} from {args.resume / 'weights.npz'}")

    factory, close_bar = _progress_factory(epochs, len(train), not (args.no_progress or quiet), sys.stderr)
    width = len(str(epochs))
    weights_path = out / "weights.npz"
    saved_settings = {k: (str(v.resolve()) if isinstance(v, Path) else v) for k, v in run_settings.items()}

    def save(done: list) -> Path:
        resume = {"settings": saved_settings, "rng": rng.bit_generator.state, "history": [r.to_dict() for r in done]}
        final = done[-1]
        return save_lenet(weights_path, model, config, train.max_value, optimizer_state=optimizer.state_dict(),
                          extra={"data": source, "seed": run_settings["seed"], "epochs": final.epoch,
                                 "test_accuracy": final.test_accuracy, "resume": resume})

    def on_epoch(r):
        close_bar()
        history.append(r)
        save(history)  # before the report line: an epoch reported is an epoch kept
        say(f"epoch {r.epoch:>{width}}/{epochs}  loss {r.train_loss:.4f}  train acc {100 * r.train_accuracy:5.1f}%  "
            f"test loss {r.test_loss:.4f}  test acc {100 * r.test_accuracy:5.1f}%  {r.seconds:.2f} s")

    first_epoch = len(history)
    start = time.perf_counter()
    try:
        # --threads bounds both NumPy's BLAS threads and convgrad's own worker threads
        # (a cluster that cannot be reached fails here, before any training)
        with _blas_threads(args.threads), runtime_settings(num_threads=args.threads), \
                data_parallel(model, loss_fn, optimizer, workers=args.workers, scheduler=args.scheduler) as step:
            fit(model, loss_fn, optimizer, train, test, epochs=epochs, batch_size=run_settings["batch_size"], rng=rng,
                schedule=lambda e: cosine_lr(lr, e, epochs), progress_factory=factory, on_epoch=on_epoch,
                start_epoch=first_epoch, step=step)
        seconds = time.perf_counter() - start
        close_bar()
        save(history)  # at the end as well (a resumed finished run, or another --out, gets its file too)
        written = [weights_path]
        try:
            written += train_figures.write(out, history, model, test)
        except ImportError:
            say("(install matplotlib for the pictures: pip install 'convgrad[train]')")
    except KeyboardInterrupt:
        close_bar()
        if history:
            where = (f"the weights of epoch {len(history)}/{epochs} (the last complete one) are in {weights_path}; "
                     f"continue with: convgrad train --resume {out}")
        else:
            where = f"no epoch was complete, so nothing was written to {out}"
        print(f"\nconvgrad train: interrupted: {where}", file=sys.stderr)
        return 130
    final = history[-1]
    correct = int(round(final.test_accuracy * len(test)))
    new = history[first_epoch:] or history  # this invocation's epochs (all of them if none was left to do)
    say(f"test accuracy {100 * final.test_accuracy:.2f}% ({correct}/{len(test)}) after {epochs} epochs "
        f"in {seconds:.1f} s ({np.median([r.seconds for r in new]):.2f} s per epoch)")
    for path in written:
        say(f"wrote {path}")
    say(f"try it: convgrad predict {weights_path} " + ("SIGNALS.npy" if isinstance(config, CNN1dConfig) else "IMAGE.png"))
    if args.json:
        print(json.dumps({"test_accuracy": final.test_accuracy, "epochs": epochs, "seconds": round(seconds, 3),
                          "weights": str(weights_path)}))
    return 0
