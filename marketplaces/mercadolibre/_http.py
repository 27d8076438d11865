"""Sending to Mercado Libre: the OAuth token, which ``/items`` calls apply a change, what answers mean.

Remote ids. A SKU listed as its own item has the item id (``MLB123``); a SKU that is a
variation of a family item has ``item/variation`` (``MLB123/987``), because every later change
to it is a ``PUT /items/MLB123`` naming variation 987. A family is created by one ``POST /items``
carried by its first SKU; the others have no call of their own, and the answer's ``remote_ids``
gives every member (the leader included) its ``item/variation`` id.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from typing import Any

import httpx

from engine import failpoints
from engine.connectors import Call, CallResult, Connector, RetryPolicy
from engine.connectors import json_body as _json

ME = "/users/me"
"""Who the token's user is: the seller id that the item look-up, the read-back scan and the order
search name in their paths and parameters (read by :func:`seller_id_in`)."""

CONTENT_FIELDS = ("pictures", "attributes", "sale_terms")
"""What a content change rewrites through ``PUT /items/{id}``, besides the title and the description.
Category, condition, currency and listing type are fixed once the item exists (the listing type
changes through its own endpoint, once)."""


# -- the token ---------------------------------------------------------------------------------


def parse_remote_id(remote_id: str) -> tuple[str, str | None]:
    """``MLB123`` -> (item, None); ``MLB123/987`` -> (item, variation)."""
    item, _, variation = remote_id.partition("/")
    return item, variation or None


def _content_calls(
    item: str,
    variation: str | None,
    body: Mapping[str, Any],
    fields: set[str],
    axes: set[str],
    variation_attributes: Collection[str],
) -> list[Call]:
    """Content first, then the description, then the title on its own.

    The title goes last and alone because Mercado Libre refuses to change it once the item has
    sales: that refusal must not keep the pictures and attributes from being updated.
    """
    path = f"/items/{item}"
    changed = {
        key: body[key]
        for key, kind in (("price", "price"), ("available_quantity", "stock"))
        if kind in fields and key in body
    }
    if variation is None:
        main = {key: body[key] for key in CONTENT_FIELDS if key in body} | changed
    else:
        attributes = list(body.get("attributes") or [])
        own = {
            "attribute_combinations": [a for a in attributes if a["id"] in axes],
            "attributes": [a for a in attributes if a["id"] in variation_attributes],
            **changed,
        }
        shared = [a for a in attributes if a["id"] not in axes and a["id"] not in variation_attributes]
        main = {"attributes": shared, **_in_variation(variation, own)}
    calls = [Call("PUT", path, main, kind="content")]
    description = body.get("description")
    if isinstance(description, Mapping) and description.get("plain_text"):
        text = {"plain_text": description["plain_text"]}
        calls.append(Call("PUT", f"{path}/description", text, kind="content"))
    if body.get("title"):
        calls.append(Call("PUT", path, {"title": body["title"]}, kind="content"))
    return calls


def wire_id(variation: str) -> int | str:
    """A variation id as Mercado Libre's JSON carries it: a number (kept as text if it is not one)."""
    return int(variation) if variation.isdigit() else variation


def _in_variation(variation: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """A ``PUT /items/{id}`` body that changes one variation (ids are numbers on the wire)."""
    return {"variations": [{"id": wire_id(variation), **body}]}


# -- answers -------------------------------------------------------------------------------------


def seller_id_in(me: Any) -> str | None:
    """The seller id a ``GET /users/me`` answer names; None when it names none."""
    return str(me["id"]) if isinstance(me, Mapping) and me.get("id") else None


def item_result(call: Call, response: httpx.Response) -> CallResult:
    """A successful answer: a created item's id is the remote id; a created family gives every
    member its ``item/variation`` id in ``remote_ids``, and the leader (the first SKU, which sent
    the call) its own as ``remote_id``."""
    if call.method == "POST" or call.kind == "adopt":
        # An adopting PUT may add variations: its answer names them, as a create's does.
        return _created(call, _json(response))
    return CallResult(True)


def _created(call: Call, item: Any) -> CallResult:
    if not isinstance(item, dict) or not item.get("id"):
        return CallResult(True)
    sent = call.body if isinstance(call.body, Mapping) else {}
    if not sent.get("variations"):
        return CallResult(True, remote_id=str(item["id"]))
    skus = _seller_skus(sent["variations"])
    # A member whose variation cannot be told gets the bare item id, never a sibling's: a later
    # price or stock change then fails loudly (the item has variations) instead of changing
    # the wrong variation.
    ids = {sku: str(item["id"]) for sku in skus} | variation_ids(item, sent)
    leader = min(skus) if skus else ""
    return CallResult(True, remote_id=ids.get(leader, str(item["id"])), remote_ids=ids)


def variation_ids(
    item: httpx.Response | Mapping[str, Any], sent: Mapping[str, Any] | None = None
) -> dict[str, str]:
    """SKU id -> remote id (``MLB123/987``) for each variation of an item (``POST``/``GET /items``).

    The SKU is read from the variation's ``SELLER_SKU`` attribute. Mercado Libre may leave the
    variations' attributes out of an answer (``GET`` shows them with ``include_attributes=all``),
    so when ``sent`` (the body that created the item) is given, variations still unnamed are
    matched by their attribute combination, which is unique within an item.
    """
    if isinstance(item, httpx.Response):
        item = _json(item)
    if not isinstance(item, Mapping) or not item.get("id"):
        return {}
    ids: dict[str, str] = {}
    unnamed: dict[frozenset[tuple[str, str]], str] = {}
    for variation in item.get("variations") or []:
        remote = f"{item['id']}/{variation['id']}"
        sku = next(iter(_seller_skus([variation])), None)
        if sku is not None:
            ids[sku] = remote
        else:
            unnamed[_combination(variation)] = remote
    for variation in (sent or {}).get("variations") or []:
        sku = next(iter(_seller_skus([variation])), None)
        match = unnamed.get(_combination(variation))
        if sku is not None and sku not in ids and match is not None:
            ids[sku] = match
    return ids


def _seller_skus(variations: Collection[Mapping[str, Any]]) -> list[str]:
    return [
        str(attribute["value_name"])
        for variation in variations
        for attribute in variation.get("attributes") or []
        if attribute.get("id") == "SELLER_SKU" and attribute.get("value_name")
    ]


def _combination(variation: Mapping[str, Any]) -> frozenset[tuple[str, str]]:
    return frozenset(
        (str(a.get("id")), str(a.get("value_name") or a.get("value_id")))
        for a in variation.get("attribute_combinations") or []
    )


def error_message(response: httpx.Response) -> str:
    """Mercado Libre's ``{message, error, status, cause[]}`` as one line; the causes say what is wrong."""
    body = _json(response)
    if not isinstance(body, dict):
        text = response.text.strip()
        return text[:300] if text else response.reason_phrase
    head = ": ".join(dict.fromkeys(str(body[k]) for k in ("error", "message") if body.get(k)))
    causes = [
        str(cause.get("message") or cause.get("code"))
        for cause in body.get("cause") or []
        if isinstance(cause, Mapping) and (cause.get("message") or cause.get("code"))
    ]
    return "; ".join([head or response.reason_phrase, *causes])


# -- a listing that already exists ------------------------------------------------------------


async def find_listing(
    client: httpx.AsyncClient,
    headers: Mapping[str, str],
    call: Call,
    seller_id: str,
    variation_attributes: Collection[str],
    connector: Connector,
) -> CallResult | None:
    """The item that already holds one of the SKUs a ``POST /items`` would create, made ready to adopt.

    Asked before every create, and after a lost answer to one: a state store deleted, truncated
    or restored from an old copy, or a run killed between Mercado Libre's answer and the state
    write, must not list a SKU twice. The SKUs are looked up one by one through
    ``GET /users/{seller}/items/search?seller_sku=`` (Mercado Libre's search takes one SELLER_SKU
    per request), in id order, stopping at the first item found: one request per single SKU and
    up to one per member for a family. Closed items are skipped (they can never be changed again).

    Found: the result names the item (and, in a family, each member's variation) and ``then``
    holds the ``PUT`` calls that bring it to the plan (see :func:`adoption_calls`). None: nothing
    holds these SKUs, so creating is safe. A failed lookup is a not-ok result, retryable when
    Mercado Libre may answer later (the connector's :meth:`~engine.connectors.Connector.may_pass_later`,
    or a transport error), a refused token dropped by the connector's one rule; the executor paces
    and counts the requests through its client.
    """
    sent = call.body if isinstance(call.body, Mapping) else {}
    skus = sorted(set(_seller_skus(sent.get("variations") or []) or _seller_skus([sent])))
    if call.method != "POST" or not skus:
        return None
    try:
        for sku in skus:
            path = f"/users/{seller_id}/items/search"
            response = await _read(client, path, {"seller_sku": sku}, headers)
            failpoints.reach("mercadolibre:searched")
            if response.status_code != 200:
                return _lookup_failed(response, sku, connector)
            found = _json(response)
            results = found.get("results") if isinstance(found, dict) else None
            for item_id in results or []:
                params = {"include_attributes": "all"}
                response = await _read(client, f"/items/{item_id}", params, headers)
                failpoints.reach("mercadolibre:item-read")
                if response.status_code != 200:
                    return _lookup_failed(response, sku, connector)
                item = _json(response)
                if isinstance(item, dict) and item.get("id") and item.get("status") != "closed":
                    return adoption(call, item, variation_attributes)
    except httpx.HTTPError as exc:
        return CallResult(False, retryable=True, error=f"cannot look up SELLER_SKU {skus[0]}: {exc}")
    return None


LOOKUP_RETRY = RetryPolicy(
    attempts=5, base=0.1, cap=math.inf, jitter=(0.5, 1.5), retry_after_mode="floor", retry_after_cap=30.0
)
"""Each look-up request is tried 5 times on 429, 5xx or a lost connection (backoff from 0.1 s,
Retry-After honoured up to 30 s), before the look-up fails."""


async def _read(
    client: httpx.AsyncClient, path: str, params: Mapping[str, str], headers: Mapping[str, str]
) -> httpx.Response:
    """One ``GET`` of a look-up, retried on its own under :data:`LOOKUP_RETRY`.

    A family's look-up is one request per member: were a failure to restart it from the first,
    a large family would rarely get through a marketplace that fails a few requests in a hundred.
    The last answer is returned as it is, so that a failed look-up names Mercado Libre's status.
    """

    async def attempt(n: int) -> httpx.Response:
        return await client.get(path, params=dict(params), headers=dict(headers))

    return await LOOKUP_RETRY.run_async(attempt)


def _lookup_failed(response: httpx.Response, sku: str, connector: Connector) -> CallResult:
    connector.drop_refused_token(response)
    return CallResult(
        False,
        retryable=connector.may_pass_later(response),
        error=f"cannot look up SELLER_SKU {sku}: {connector.error_of(response)}",
    )


def adoption(call: Call, item: Mapping[str, Any], variation_attributes: Collection[str]) -> CallResult:
    """The found ``item`` adopted for the ``POST /items`` in ``call``: its remote ids, and in ``then``
    the calls that bring it to the plan.

    A single SKU found as an item of its own gets its content, price and quantity; found as a
    variation of a family item, its variation's price and quantity. A family found in an item
    gets one ``PUT`` with its pictures, shared attributes and every variation: each member's
    (matched by SELLER_SKU, else by attribute combination) at the planned price and quantity, a
    member the item lacks added as a new variation, and the item's other variations named by id
    only so that Mercado Libre keeps them. The description and title follow, as for any content
    change. A paused item is reactivated.
    """
    sent: Mapping[str, Any] = call.body if isinstance(call.body, Mapping) else {}
    item_id = str(item["id"])
    path = f"/items/{item_id}"
    wake = [Call("PUT", path, {"status": "active"}, kind="create")] if item.get("status") == "paused" else []
    variations = list(item.get("variations") or [])
    if not sent.get("variations"):
        sku = next(iter(_seller_skus([sent])), "")
        remote = variation_ids(item).get(sku)
        if variations and remote is not None:
            _, variation = parse_remote_id(remote)
            assert variation is not None
            body = {"price": sent.get("price"), "available_quantity": sent.get("available_quantity", 0)}
            return CallResult(
                True,
                remote_id=remote,
                then=(*wake, Call("PUT", path, _in_variation(variation, body), kind="create")),
            )
        fields = {"content", "price", "stock"}
        calls = _content_calls(item_id, None, sent, fields, set(), variation_attributes)
        return CallResult(True, remote_id=item_id, then=(*wake, *calls))
    known = variation_ids(item, sent)
    planned = list(sent["variations"])
    ours = {sku: known[sku] for sku in _seller_skus(planned) if sku in known}
    mine = {parse_remote_id(remote)[1] for remote in ours.values()}
    merged: list[dict[str, Any]] = []
    for variation in planned:
        named = next(iter(_seller_skus([variation])), None)
        remote = ours.get(named) if named is not None else None
        if remote is None:
            merged.append(dict(variation))  # a member the item lacks: added, not listed apart
            continue
        variation_id = parse_remote_id(remote)[1] or ""
        merged.append({"id": wire_id(variation_id), **variation})
    merged += [{"id": v["id"]} for v in variations if str(v.get("id")) not in mine]
    main: dict[str, Any] = {key: sent[key] for key in CONTENT_FIELDS if key in sent}
    main["variations"] = merged
    calls = [Call("PUT", path, main, kind="adopt")]
    description = sent.get("description")
    if isinstance(description, Mapping) and description.get("plain_text"):
        calls.append(
            Call("PUT", f"{path}/description", {"plain_text": description["plain_text"]}, kind="content")
        )
    if sent.get("title"):
        calls.append(Call("PUT", path, {"title": sent["title"]}, kind="content"))
    skus = _seller_skus(planned)
    ids = {sku: ours.get(sku, item_id) for sku in skus}
    leader = min(skus) if skus else ""
    return CallResult(True, remote_id=ids.get(leader, item_id), remote_ids=ids, then=(*wake, *calls))
