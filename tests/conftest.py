"""Shared fixtures. Tests run on the CPU, seeded, with tqdm quiet."""

import os

import pytest
import torch

os.environ.setdefault("TQDM_DISABLE", "1")


def synthvoc_split(tmp_path_factory, cfg, split: str):
    """A small SynthVOC tree made for one test module, read as its ``split``."""
    from deconvnet.data import VOCSegmentation, make_synthvoc

    root = tmp_path_factory.mktemp("synth")
    make_synthvoc(cfg, root, workers=1, progress=False)
    return VOCSegmentation(root, split)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


# Files whose tests take longest, started first: under `make test` (-n 2 --dist loadfile) a long file that is
# scheduled last runs alone while the other worker idles; started first, it runs beside everything else.
LONGEST_FIRST = ("test_voc_book.py",)  # the whole quick book on a tiny VOC tree: ~13 of the suite's ~40 core-minutes


def pytest_collection_modifyitems(config, items):
    def key(item):  # those files first, and their slow tests first within them; stable: the rest keep their order
        first = item.path.name in LONGEST_FIRST
        return not first, not (first and item.get_closest_marker("slow") is not None)

    items.sort(key=key)
