"""The data layer: the dataset catalogue (DATASETS), file parsers, downloads, and the
paper's split protocol that turns a dataset into a Split with its Prior.

    catalog.py   DatasetSpec, the DATASETS registry, load_dataset, dataset_catalog
    parsers.py   KEEL, LIBSVM, UJIIndoorLoc, CT slices, MNIST IDX, eSol → float64 X, y
    download.py  urllib download, sha256 check, zip extraction, atomic write
    protocol.py  load_split: standardization, 5000 / 10 % / 90 % split, priors
    priors.py    Prior;  split.py  Split
"""
from .catalog import DATASETS, DatasetSpec, LoadedDataset, dataset_catalog, get_dataset, list_datasets, load_dataset
from .priors import Prior
from .protocol import load_split
from .split import Split

__all__ = [
    "DATASETS",
    "DatasetSpec",
    "LoadedDataset",
    "Prior",
    "Split",
    "dataset_catalog",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "load_split",
]
