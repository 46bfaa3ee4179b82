#!/usr/bin/env python3
"""huggingface_hub's side of the cache interoperability test.

    interop.py download REPO CACHE   # snapshot_download from HF_ENDPOINT into CACHE; prints the path
    interop.py offline REPO CACHE    # the same with local_files_only (what another tool cached);
                                     # prints the snapshot path and hf_hub_download's config.json path
"""
import sys

from huggingface_hub import hf_hub_download, snapshot_download

mode, repo, cache = sys.argv[1:4]
if mode == "download":
    print(snapshot_download(repo, cache_dir=cache))
else:
    print(snapshot_download(repo, cache_dir=cache, local_files_only=True))
    print(hf_hub_download(repo, "config.json", cache_dir=cache, local_files_only=True))
