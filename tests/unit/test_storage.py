"""file:// storage: URIs, reads, atomic writes, listing and keys that cannot escape."""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from filterjob_worker.adapters import filelisting, storage
from filterjob_worker.core.errors import (
    InputNotFound,
    PermanentTaskError,
    SpecError,
    TaskError,
    TransientTaskError,
)


def uri(path: Path) -> str:
    return path.as_uri()


def files_below(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def temp_files_below(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(storage.TEMP_SUFFIX)]


def touch(root: Path, *keys: str) -> None:
    for key in keys:
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")


# --- to_path / to_uri ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("s3://bucket/key.jpg", "only file:// URIs are supported"),
        ("https://example.com/a.jpg", "only file:// URIs are supported"),
        ("/data/in/a.jpg", "only file:// URIs are supported"),
        ("", "only file:// URIs are supported"),
        ("file://server/share/a.jpg", "file URIs must not name a host"),
        ("file:relative/a.jpg", "file URIs need an absolute path"),
        ("file:a.jpg", "file URIs need an absolute path"),
    ],
)
def test_to_path_rejects_what_it_cannot_serve(bad: str, reason: str) -> None:
    with pytest.raises(SpecError, match=reason) as info:
        storage.to_path(bad)
    assert repr(bad) in str(info.value)


@pytest.mark.parametrize(
    ("good", "path"),
    [
        ("file:///data/in/a.jpg", "/data/in/a.jpg"),
        ("file://localhost/data/in/a.jpg", "/data/in/a.jpg"),
        ("file:/data/in/a.jpg", "/data/in/a.jpg"),
        ("file:///data/in/my%20photo.jpg", "/data/in/my photo.jpg"),
        ("file:///data/in/caf%C3%A9.jpg", "/data/in/café.jpg"),
    ],
)
def test_to_path(good: str, path: str) -> None:
    assert storage.to_path(good) == Path(path)


def test_to_uri_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "a b" / "ünï #1?.jpg"
    assert storage.to_path(storage.to_uri(path)) == path


# --- read_bytes ------------------------------------------------------------------------


def test_read_bytes(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"hello")
    assert storage.read_bytes(uri(tmp_path / "a.jpg")) == b"hello"


def test_read_missing_file_is_input_not_found(tmp_path: Path) -> None:
    missing = uri(tmp_path / "gone.jpg")
    with pytest.raises(InputNotFound, match=r"cannot read .*gone\.jpg: No such file or directory") as info:
        storage.read_bytes(missing)
    assert info.value.permanent


def test_read_missing_directory_is_input_not_found(tmp_path: Path) -> None:
    with pytest.raises(InputNotFound):
        storage.read_bytes(uri(tmp_path / "no" / "such" / "a.jpg"))


def test_read_directory_is_permanent(tmp_path: Path) -> None:
    with pytest.raises(PermanentTaskError, match="Is a directory") as info:
        storage.read_bytes(uri(tmp_path))
    assert not isinstance(info.value, InputNotFound)
    assert info.value.permanent


def test_read_refuses_objects_above_max_bytes(tmp_path: Path) -> None:
    path = tmp_path / "big.jpg"
    path.write_bytes(b"x" * 100)
    assert storage.read_bytes(uri(path), max_bytes=100) == b"x" * 100
    with pytest.raises(PermanentTaskError, match="is 100 bytes, above the limit of 99") as info:
        storage.read_bytes(uri(path), max_bytes=99)
    assert info.value.permanent


# --- write_atomic ----------------------------------------------------------------------


def test_write_creates_parents_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "out" / "deep" / "down" / "a.jpg"
    storage.write_atomic(uri(target), b"data")
    assert target.read_bytes() == b"data"
    assert files_below(tmp_path) == ["out/deep/down/a.jpg"]


def test_write_replaces_an_existing_file_whole(tmp_path: Path) -> None:
    target = tmp_path / "a.jpg"
    storage.write_atomic(uri(target), b"a much longer first version of the output")
    storage.write_atomic(uri(target), b"short")
    assert target.read_bytes() == b"short"
    assert files_below(tmp_path) == ["a.jpg"]


def test_write_empty_object(tmp_path: Path) -> None:
    storage.write_atomic(uri(tmp_path / "empty"), b"")
    assert (tmp_path / "empty").read_bytes() == b""


@pytest.mark.parametrize(
    ("setup", "key", "reason"),
    [
        # The target is an existing directory: the final rename fails.
        (lambda root: (root / "a.jpg").mkdir(), "a.jpg", "Is a directory"),
        # The parent of the target is a regular file.
        (lambda root: (root / "sub").write_bytes(b"x"), "sub/a.jpg", "File exists"),
        # A grandparent of the target is a regular file.
        (lambda root: (root / "sub").write_bytes(b"x"), "sub/deeper/a.jpg", "Not a directory"),
        # A name no file system takes.
        (lambda root: None, "x" * 300 + ".jpg", "File name too long"),
    ],
    ids=["target-is-a-directory", "parent-is-a-file", "grandparent-is-a-file", "name-too-long"],
)
def test_write_failures_are_permanent_task_errors_and_leave_no_temp_file(
    tmp_path: Path, setup: Callable[[Path], object], key: str, reason: str
) -> None:
    setup(tmp_path)
    before = files_below(tmp_path)
    with pytest.raises(TaskError, match=reason) as info:
        storage.write_atomic(uri(tmp_path / key), b"data")
    assert isinstance(info.value, PermanentTaskError)
    assert info.value.permanent
    assert temp_files_below(tmp_path) == []
    assert files_below(tmp_path) == before


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_io_errors_while_writing_are_transient_and_keep_the_old_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    target = tmp_path / "a.jpg"
    target.write_bytes(b"old")

    def fail(*args: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(storage.os, failing, fail)
    with pytest.raises(TransientTaskError, match="No space left on device") as info:
        storage.write_atomic(uri(target), b"new")
    assert not info.value.permanent
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert temp_files_below(tmp_path) == []


def test_remove_temp_files(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", f".a.jpg.1234{storage.TEMP_SUFFIX}", f"sub/.b.png.abcd{storage.TEMP_SUFFIX}")
    assert storage.remove_temp_files(uri(tmp_path)) == 2
    assert files_below(tmp_path) == ["a.jpg"]


def test_exists(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg")
    assert storage.exists(uri(tmp_path / "a.jpg"))
    assert not storage.exists(uri(tmp_path / "b.jpg"))
    assert not storage.exists(uri(tmp_path))


# --- list_keys -------------------------------------------------------------------------


def test_list_keys_is_recursive_sorted_and_skips_hidden_and_temp_files(tmp_path: Path) -> None:
    touch(
        tmp_path,
        "b.jpg",
        "a.png",
        "z/y.jpg",
        "z/a/b/c.jpg",
        "m/n.jpg",
        "z/.hidden.jpg",
        ".cache/c.jpg",
        "z/.git/objects/o.jpg",
        f".b.jpg.1234{storage.TEMP_SUFFIX}",
        f"z/y.jpg{storage.TEMP_SUFFIX}",
        "zz.jpg",
        "a/x.jpg",
        "a-b/x.jpg",
    )
    keys = list(filelisting.list_keys(uri(tmp_path)))
    # Sorted as keys (strings), not directory by directory: a file never comes before a
    # key that sorts lower in a sub-directory.
    assert keys == ["a-b/x.jpg", "a.png", "a/x.jpg", "b.jpg", "m/n.jpg", "z/a/b/c.jpg", "z/y.jpg", "zz.jpg"]
    assert keys == sorted(keys)


def test_list_keys_of_an_empty_directory(tmp_path: Path) -> None:
    assert list(filelisting.list_keys(uri(tmp_path))) == []


@pytest.mark.parametrize("exclude", ["out", "out/"])
def test_list_keys_skips_the_excluded_prefix(tmp_path: Path, exclude: str) -> None:
    touch(tmp_path, "a.jpg", "out/a.jpg", "out/sub/b.jpg", "outer/c.jpg", "sub/out/d.jpg")
    excluded = uri(tmp_path / "out") + ("/" if exclude.endswith("/") else "")
    keys = list(filelisting.list_keys(uri(tmp_path) + "/", exclude=excluded))
    assert keys == ["a.jpg", "outer/c.jpg", "sub/out/d.jpg"]


def test_list_keys_excludes_a_nested_prefix_given_through_a_symlink(tmp_path: Path) -> None:
    src = tmp_path / "src"
    touch(src, "a.jpg", "out/a.jpg")
    (tmp_path / "link-to-out").symlink_to(src / "out")
    assert list(filelisting.list_keys(uri(src), exclude=uri(tmp_path / "link-to-out"))) == ["a.jpg"]


@pytest.mark.parametrize("kind", ["missing", "file"])
def test_list_keys_of_a_missing_source_is_an_error(tmp_path: Path, kind: str) -> None:
    source = tmp_path / "in"
    if kind == "file":
        source.write_bytes(b"x")
    with pytest.raises(SpecError, match="is not an existing directory"):
        list(filelisting.list_keys(uri(source)))


# --- join --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "",
        "..",
        "../x.jpg",
        "a/../../x.jpg",
        "a/..",
        "/etc/passwd",
        "//x.jpg",
        "a//b.jpg",
        "a/",
        ".",
        "./a.jpg",
        "a/./b.jpg",
        "a\\b.jpg",
        "..\\x.jpg",
    ],
)
def test_join_rejects_every_escape(tmp_path: Path, key: str) -> None:
    prefix = uri(tmp_path)
    for resolve in (False, True):
        with pytest.raises(SpecError, match="would escape") as info:
            storage.join(prefix, key, resolve=resolve)
        assert repr(key) in str(info.value)


@pytest.mark.parametrize(
    ("key", "quoted"),
    [
        ("a.jpg", "a.jpg"),
        ("sub/dir/a.jpg", "sub/dir/a.jpg"),
        ("my photo.jpg", "my%20photo.jpg"),
        ("café/ünï.jpg", "caf%C3%A9/%C3%BCn%C3%AF.jpg"),
        ("100%.jpg", "100%25.jpg"),
        ("a#b?c.jpg", "a%23b%3Fc.jpg"),
        ("..a/b..jpg", "..a/b..jpg"),
        (".hidden.jpg", ".hidden.jpg"),
    ],
)
def test_join_quotes_keys_and_round_trips(tmp_path: Path, key: str, quoted: str) -> None:
    for prefix in (uri(tmp_path), uri(tmp_path) + "/"):
        joined = storage.join(prefix, key)
        assert joined == uri(tmp_path) + "/" + quoted
        assert storage.to_path(joined) == tmp_path.joinpath(*key.split("/"))
        assert storage.join(prefix, key, resolve=True) == joined


def test_join_rejects_a_symlink_pointing_outside_only_when_resolving(tmp_path: Path) -> None:
    prefix, outside = tmp_path / "out", tmp_path / "elsewhere"
    prefix.mkdir()
    outside.mkdir()
    (prefix / "link").symlink_to(outside)
    (prefix / "file-link.jpg").symlink_to(outside / "victim.jpg")
    for key in ("link/a.jpg", "file-link.jpg"):
        with pytest.raises(SpecError, match="resolves outside"):
            storage.join(uri(prefix), key, resolve=True)
        assert storage.join(uri(prefix), key, resolve=False) == uri(prefix / key)


def test_join_allows_symlinks_that_stay_inside(tmp_path: Path) -> None:
    real = tmp_path / "real"
    (real / "sub").mkdir(parents=True)
    (real / "alias").symlink_to(real / "sub")
    assert storage.join(uri(real), "alias/a.jpg", resolve=True) == uri(real / "alias" / "a.jpg")
    # A prefix that is itself a symlink is compared after resolving it too.
    (tmp_path / "prefix-link").symlink_to(real)
    assert storage.join(uri(tmp_path / "prefix-link"), "sub/a.jpg", resolve=True) == uri(
        tmp_path / "prefix-link" / "sub" / "a.jpg"
    )


def test_joined_uris_work_with_read_and_write(tmp_path: Path) -> None:
    target = storage.join(uri(tmp_path), "sub dir/ünï #1.jpg", resolve=True)
    storage.write_atomic(target, b"data")
    assert storage.read_bytes(target) == b"data"
    assert list(filelisting.list_keys(uri(tmp_path))) == ["sub dir/ünï #1.jpg"]


# --- scan: nothing left out silently -----------------------------------------------------


def reasons(found: filelisting.Scan, root: Path) -> dict[str, str]:
    return {Path(u.path).relative_to(root).as_posix(): u.reason for u in found.unlisted}


def test_scan_reports_broken_links_loops_and_special_files(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", "sub/b.jpg")
    (tmp_path / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    (tmp_path / "loop-a.jpg").symlink_to(tmp_path / "loop-b.jpg")
    (tmp_path / "loop-b.jpg").symlink_to(tmp_path / "loop-a.jpg")
    (tmp_path / "sub" / "up").symlink_to(tmp_path)
    os.mkfifo(tmp_path / "pipe.jpg")
    found = filelisting.scan(uri(tmp_path))
    assert found.keys == ["a.jpg", "sub/b.jpg"]
    got = reasons(found, tmp_path)
    assert set(got) == {"dangling.jpg", "loop-a.jpg", "loop-b.jpg", "sub/up", "pipe.jpg"}
    assert got["dangling.jpg"].startswith("broken symbolic link")
    assert got["loop-a.jpg"] == "symbolic link loop"
    assert got["sub/up"].startswith("symbolic link loop")
    assert got["pipe.jpg"].startswith("not a regular file (a FIFO)")


def test_scan_reports_sockets_and_devices_that_are_selected(tmp_path: Path) -> None:
    import socket  # noqa: PLC0415

    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.jpg"))
        (tmp_path / "null.jpg").symlink_to("/dev/null")
        found = filelisting.scan(uri(tmp_path))
    got = reasons(found, tmp_path)
    assert got["s.jpg"].startswith("not a regular file (a socket)")
    assert got["null.jpg"].startswith("not a regular file (a device)")


def test_scan_ignores_special_files_that_are_not_selected_but_never_a_broken_link(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg")
    os.mkfifo(tmp_path / "notes.fifo")
    # A dangling link may have stood for a directory of inputs: reported whatever its name.
    (tmp_path / "2019").symlink_to(tmp_path / "unmounted")
    found = filelisting.scan(uri(tmp_path), select=lambda key: key.endswith(".jpg"))
    assert found.keys == ["a.jpg"]
    assert set(reasons(found, tmp_path)) == {"2019"}


def test_scan_follows_symlinked_directories(tmp_path: Path) -> None:
    touch(tmp_path, "elsewhere/x.jpg", "src/a.jpg")
    (tmp_path / "src" / "more").symlink_to(tmp_path / "elsewhere")
    found = filelisting.scan(uri(tmp_path / "src"))
    assert (found.keys, found.unlisted) == (["a.jpg", "more/x.jpg"], [])


def test_scan_reports_a_directory_that_vanishes_while_listed(tmp_path: Path) -> None:
    touch(tmp_path, "0.jpg", "later/b.jpg")

    def remove_later(key: str) -> bool:
        # Called for 0.jpg while the root is listed, before the walk enters later/.
        shutil.rmtree(tmp_path / "later", ignore_errors=True)
        return True

    found = filelisting.scan(uri(tmp_path), select=remove_later)
    assert found.keys == ["0.jpg"]
    assert reasons(found, tmp_path) == {"later": "vanished while listing (No such file or directory)"}


def test_scan_reports_a_file_that_vanishes_while_listed(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg", "b.jpg")

    def remove_the_other(key: str) -> bool:
        for name in ("a.jpg", "b.jpg"):
            if name != key:
                (tmp_path / name).unlink(missing_ok=True)
        return True

    found = filelisting.scan(uri(tmp_path), select=remove_the_other)
    assert len(found.keys) == 1
    assert list(reasons(found, tmp_path).values()) == ["vanished while listing (No such file or directory)"]


def test_list_keys_refuses_a_source_it_cannot_list_completely(tmp_path: Path) -> None:
    touch(tmp_path, "a.jpg")
    (tmp_path / "b.jpg").symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(SpecError, match=r"b\.jpg: broken symbolic link"):
        list(filelisting.list_keys(uri(tmp_path)))


# --- refuse_overwriting_inputs ------------------------------------------------------------


def test_a_worker_never_writes_onto_its_input(tmp_path: Path) -> None:
    touch(tmp_path, "in/a.jpg")
    target = uri(tmp_path / "in" / "a.jpg")
    with pytest.raises(PermanentTaskError, match="it is the input itself"):
        storage.refuse_overwriting_inputs(target, input_uri=target, source_uri=None)


def test_a_worker_never_writes_below_the_source_even_through_a_symlink(tmp_path: Path) -> None:
    touch(tmp_path, "in/a.jpg", "in/b.jpg")
    (tmp_path / "out").symlink_to(tmp_path / "in")
    with pytest.raises(PermanentTaskError, match="inside the source"):
        storage.refuse_overwriting_inputs(
            uri(tmp_path / "out" / "b.jpg"), input_uri=uri(tmp_path / "in" / "a.jpg"), source_uri=uri(tmp_path / "in")
        )
    storage.refuse_overwriting_inputs(
        uri(tmp_path / "elsewhere" / "a.jpg"), input_uri=uri(tmp_path / "in" / "a.jpg"), source_uri=uri(tmp_path / "in")
    )


def test_a_task_whose_source_is_not_a_local_path_fails_the_task_not_the_worker(tmp_path: Path) -> None:
    with pytest.raises(PermanentTaskError, match="cannot check where"):
        storage.refuse_overwriting_inputs(
            uri(tmp_path / "out.jpg"), input_uri=uri(tmp_path / "a.jpg"), source_uri="s3://bucket/in/"
        )


def test_list_objects_finds_every_file_below_a_prefix_once_and_skips_temporary_files(tmp_path: Path) -> None:
    root = tmp_path / "out"
    (root / "a" / "b").mkdir(parents=True)
    for name in ("x.png", "a/y.png", "a/b/z.png", ".hidden.png", f"a/.w.png.1234{storage.TEMP_SUFFIX}"):
        (root / name).write_bytes(b"data")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "v.png").write_bytes(b"data")
    (root / "linked").symlink_to(tmp_path / "elsewhere")
    (root / "a" / "loop").symlink_to(root)  # walked once, not for ever
    found = filelisting.list_objects(uri(root))
    assert found.keys == [".hidden.png", "a/b/z.png", "a/y.png", "linked/v.png", "x.png"]
    assert found.unlisted == []


def test_list_objects_of_a_missing_prefix_is_empty_and_of_a_file_is_unlisted(tmp_path: Path) -> None:
    assert filelisting.list_objects(uri(tmp_path / "nothing")) == filelisting.Scan()
    (tmp_path / "file").write_bytes(b"x")
    found = filelisting.list_objects(uri(tmp_path / "file"))
    assert found.keys == []
    assert [u.path for u in found.unlisted] == [str(tmp_path / "file")]
    assert found.unlisted[0].reason.startswith("cannot be listed: ")
