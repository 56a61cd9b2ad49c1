"""Waiting for the API server's state through watches, never by polling a list on a timer."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import kubernetes.client
import kubernetes.watch

#: The status of a watch whose resource version the server no longer has.
GONE = 410


def metadata(item: Any, field: str) -> Any:
    """A metadata field of a typed object or of a dict (the custom-objects API gives dicts)."""
    if isinstance(item, dict):
        return item["metadata"].get(field)
    return getattr(item.metadata, field)


def wait_for_list(
    list_call: Callable[..., Any],
    condition: Callable[[list[Any]], bool],
    *,
    timeout: float = 60.0,
    what: str = "objects",
    **selection: Any,
) -> list[Any]:
    """List with ``list_call(**selection)``, then follow its watch until ``condition(objects)`` holds.

    ``objects`` is the current set (by uid) after each event, so conditions such as "two pods exist"
    or "nothing is left" can be said. A watch the server ends is resumed from the last resource
    version, one whose version expired starts again from a fresh list; ``timeout`` bounds it all.
    """
    deadline = time.monotonic() + timeout
    current: dict[str, Any] = {}
    while True:
        listing = list_call(**selection)
        items = listing["items"] if isinstance(listing, dict) else listing.items
        version = (
            listing["metadata"]["resourceVersion"] if isinstance(listing, dict) else listing.metadata.resource_version
        )
        current = {metadata(item, "uid"): item for item in items}
        if condition(list(current.values())):
            return list(current.values())
        watch = kubernetes.watch.Watch()
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                for event in watch.stream(
                    list_call, resource_version=version, timeout_seconds=max(1, int(remaining)), **selection
                ):
                    item = event["object"]
                    version = metadata(item, "resource_version" if not isinstance(item, dict) else "resourceVersion")
                    if event["type"] == "DELETED":
                        current.pop(metadata(item, "uid"), None)
                    else:
                        current[metadata(item, "uid")] = item
                    if condition(list(current.values())):
                        watch.stop()
                        return list(current.values())
        except kubernetes.client.ApiException as error:
            if error.status != GONE:
                raise
            continue  # the version expired: list again
        names = sorted(str(metadata(item, "name")) for item in current.values())
        raise AssertionError(f"{what} did not get there within {timeout:.0f} s; last seen: {names}")


def named(name: str) -> dict[str, str]:
    """The field selector that lists and watches one object by name."""
    return {"field_selector": f"metadata.name={name}"}


def api_error(call: Callable[[], Any]) -> kubernetes.client.ApiException:
    """The ApiException ``call`` raises (an assertion error if it succeeds)."""
    try:
        call()
    except kubernetes.client.ApiException as error:
        return error
    raise AssertionError("the API server accepted what it should have refused")
