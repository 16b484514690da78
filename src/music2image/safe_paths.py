"""Writing inside the output folder, and only there.

An output folder may have been prepared by someone else: `thumbs/` can be a symbolic link to `~/.ssh`, a target file
a link to `~/precious.txt`. Everything here walks from the output folder one name at a time with directory file
descriptors and O_NOFOLLOW (openat), so a link planted anywhere below the folder is refused, with its name, instead
of being written through; checking a path first and opening it afterwards would leave a window to swap a link in.
The output folder itself is the user's choice and may be a link.
"""

from __future__ import annotations

import os
import stat
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from .errors import OutputDirError

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class UnsafePathError(OutputDirError):
    """A path below the output folder is a symbolic link (or leaves the folder): nothing is written through it."""


def relative_parts(relative: str | os.PathLike) -> tuple[str, ...]:
    """The names of a path meant to stay inside a folder; an absolute path, `..`, or an empty path is refused."""
    path = PurePosixPath(os.fspath(relative))
    if path.is_absolute() or not path.parts or any(part in ("..", "") for part in path.parts) or "\\" in str(path):
        raise UnsafePathError(f"{relative}: not a path inside the output folder")
    return tuple(part for part in path.parts if part != ".")


def _link_message(path: Path, dir_fd: int | None = None, name: str | None = None) -> str:
    try:
        points_to = os.readlink(name, dir_fd=dir_fd) if name is not None else os.readlink(path)
    except OSError:
        points_to = "?"
    return (f"{path} is a symbolic link (to {points_to}): music2image does not write through links in an output "
            "folder; remove the link and run the command again")


@contextmanager
def open_folder(root: str | os.PathLike, relative: str | os.PathLike = ".", create: bool = True):
    """A file descriptor of the folder ROOT/RELATIVE, made on the way (create=True) without following any link
    below ROOT. Yields the descriptor; closes it afterwards."""
    root = Path(root)
    parts = () if os.fspath(relative) in (".", "") else relative_parts(relative)
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for depth, name in enumerate(parts):
            try:
                if create:
                    try:
                        os.mkdir(name, 0o755, dir_fd=fd)
                    except FileExistsError:
                        pass
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                if _is_link(name, fd):
                    raise UnsafePathError(_link_message(root.joinpath(*parts[:depth + 1]), fd, name)) from None
                if isinstance(exc, FileNotFoundError) and not create:
                    raise
                raise OutputDirError(f"{root.joinpath(*parts[:depth + 1])}: cannot open the folder "
                                     f"({exc.strerror or exc})") from exc
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=dir_fd).st_mode)
    except OSError:
        return False


def refuse_links(root: str | os.PathLike, *relatives: str | os.PathLike) -> None:
    """Raise UnsafePathError if any of ROOT/RELATIVE (or a folder on the way) is a symbolic link. For a command to
    stop before it writes anything; the writes themselves refuse links again."""
    root = Path(root)
    for relative in relatives:
        parts = relative_parts(relative)
        for depth in range(len(parts)):
            path = root.joinpath(*parts[:depth + 1])
            if path.is_symlink():
                raise UnsafePathError(_link_message(path))
            if not path.is_dir():
                break


def write_bytes_inside(root: str | os.PathLike, relative: str | os.PathLike, data: bytes) -> Path:
    """Write DATA to ROOT/RELATIVE atomically (temporary file, fsync, rename) without following links: a folder on
    the way or the target that is a link is refused. Readers and a crash see the old file or the new one."""
    root = Path(root)
    parts = relative_parts(relative)
    folder, name = PurePosixPath(*parts[:-1]) if len(parts) > 1 else ".", parts[-1]
    with open_folder(root, folder) as dir_fd:
        if _is_link(name, dir_fd):
            raise UnsafePathError(_link_message(root.joinpath(*parts), dir_fd, name))
        temporary = f".{name}.{os.getpid()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                     dir_fd=dir_fd)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)  # rename never follows a link
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=dir_fd)
            except OSError:
                pass
            raise
        os.fsync(dir_fd)
    return root.joinpath(*parts)


def remove_inside(root: str | os.PathLike, relative: str | os.PathLike) -> bool:
    """Remove the file ROOT/RELATIVE if it is there (a link is removed itself, never its target). True if removed."""
    parts = relative_parts(relative)
    folder = PurePosixPath(*parts[:-1]) if len(parts) > 1 else "."
    try:
        with open_folder(root, folder, create=False) as dir_fd:
            os.unlink(parts[-1], dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    return True


def resolves_inside(root: str | os.PathLike, relative: str | os.PathLike) -> Path | None:
    """ROOT/RELATIVE if it names an existing file whose real path is inside ROOT's real path (links inside the
    folder are fine to read), else None: for reading files a log names, which may have been edited."""
    try:
        parts = relative_parts(relative)
    except UnsafePathError:
        return None
    path = Path(root).joinpath(*parts)
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    if os.path.commonpath([real_root, real]) != real_root or not os.path.isfile(real):
        return None
    return path


def creation_problem(path: str | os.PathLike) -> str | None:
    """Why `path` (a folder, or a file, with the folders above it) could not be created now, said before any long
    work: a file in the way of its folder, or no permission to write in the nearest one that exists; None if it can.
    Nothing is created here. lexists: a dangling link is in the way too (mkdir meets it); os.path, not Path: below a
    folder we may not search everything reads as absent (Path.exists raises), and that folder's access says why."""
    existing = Path(path)
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    if not os.path.isdir(existing):
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"no permission to create anything in {existing}"
    return None
