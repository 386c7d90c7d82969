"""Model packages: content-addressed sets of files, and moving them in and out of a store.

One module per concern, from the bottom up: :mod:`.manifest` (the manifest type and its digest),
:mod:`.scan` (the files of a folder, refusing unsafe entries), :mod:`.hashcache` and
:mod:`.hashing` (digests, computed once), :mod:`.huggingface` and :mod:`.source` (what a package is
made from), :mod:`.reference` (the package URI, formatted and parsed in one place),
:mod:`.upload` / :mod:`.published` / :mod:`.build` (into a store), :mod:`.download` and
:mod:`.verify` (out of one, and "can it be served"), :mod:`.lineage` (what a version records about
its package's origin). Nothing here knows about the registry or a deploy target.
"""
