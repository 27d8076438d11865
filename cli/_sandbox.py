"""`tradepost sandbox`: the stand-in servers on 127.0.0.1 and a project that uses them."""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click
import httpx

from cli._output import check_writable
from cli._plan import _project, config_option
from cli._render import console
from engine import TradepostError
from engine.project import Project, vtex_orders_account
from marketplaces.sandbox import SERVE_PORT, build_sandbox, read_catalog

ROOT = Path(__file__).resolve().parent.parent


@click.group(invoke_without_command=True)
@click.pass_context
@click.option(
    "--catalog",
    type=click.Path(exists=True, path_type=Path),
    default=ROOT / "examples" / "catalog.jsonl",
    show_default=True,
    help="Canonical catalog (JSON Lines) the VTEX stand-in serves.",
)
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=ROOT / "rules",
    show_default=True,
    help="Folder of the rule files the project uses.",
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("sandbox"),
    show_default=True,
    help="Where to write the sandbox project (tradepost.yaml, secrets/, state).",
)
@click.option(
    "--port",
    type=int,
    default=8700,
    show_default=True,
    help="First port; each stand-in takes the next one (VTEX first, then the marketplaces).",
)
@click.option(
    "--serve-port",
    type=click.IntRange(1, 65535),
    default=SERVE_PORT,
    show_default=True,
    help="Port of the project's `tradepost serve`, which the VTEX stand-in notifies of its changes.",
)
def sandbox(
    ctx: click.Context, catalog: Path, rules_dir: Path, folder: Path, port: int, serve_port: int
) -> None:
    """Serve every registered stand-in (VTEX, the marketplaces, plug-ins') on 127.0.0.1 until
    interrupted (Ctrl-C).

    Then, in another terminal: tradepost plan -c sandbox/tradepost.yaml and
    tradepost apply -c sandbox/tradepost.yaml. Nothing leaves this machine.
    While it runs, `tradepost sandbox order` buys on a stand-in marketplace and
    `tradepost sandbox invoice` invoices a VTEX order, to try `tradepost orders`;
    with `tradepost serve --sync` running, `tradepost sandbox stock` and `tradepost sandbox price`
    change VTEX and the marketplaces follow within seconds.
    """
    if ctx.invoked_subcommand is not None:
        return
    try:
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(0, "it is a file, not a folder")
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TradepostError(
            f"cannot write the sandbox project to '{folder}': {exc.strerror or exc}; "
            "pass --dir with a folder you can write to"
        ) from None
    check_writable(folder / "tradepost.yaml", "the sandbox project")
    box = build_sandbox(read_catalog(catalog))
    box.start(base_port=port)
    try:
        config = box.write_project(folder, rules_dir.resolve(), serve_port=serve_port)
    except BaseException:
        box.stop()
        raise
    out = console()
    for name in box.standins:
        out.print(f"{name:>13}  {box.url(name)}")
    out.print(f"\nproject: {config}\n  tradepost plan -c {config}\n  tradepost apply -c {config}")
    out.print(f"  tradepost sandbox order -c {config} -m mercadolibre --sku SKU_ID")
    out.print(f"  tradepost orders pull -c {config} && tradepost orders push -c {config}")
    out.print(
        f"  tradepost serve -c {config} --sync   (then: tradepost sandbox stock -c {config} SKU_ID 0)\n"
    )
    out.print("Ctrl-C stops the servers.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()


@sandbox.command()
@config_option
@click.option("-m", "--marketplace", required=True, help="The stand-in marketplace to buy on.")
@click.option("--sku", "sku_id", required=True, help="A VTEX SKU id listed there (after `tradepost apply`).")
@click.option("--quantity", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--price", help="Unit price the buyer pays (default: the listed price); try a divergent one.")
@click.option("--status", help="The order's first status (e.g. pending: not yet paid).")
def order(
    config_path: Path | None,
    marketplace: str,
    sku_id: str,
    quantity: int,
    price: str | None,
    status: str | None,
) -> None:
    """Place an order on a running sandbox marketplace, as a buyer would."""
    project = _project(config_path)
    body: dict[str, object] = {"sku_id": sku_id, "quantity": quantity}
    if price is not None:
        body["unit_price"] = price
    if status is not None:
        body["status"] = status
    answer = _control(_marketplace_url(project, marketplace), "/_sandbox/orders", body)
    console().print(f"{marketplace} order {answer.get('order_id')} created for SKU {sku_id} x {quantity}")


@sandbox.command(name="order-status")
@click.argument("order_id")
@click.argument("status")
@config_option
@click.option("-m", "--marketplace", required=True, help="The stand-in marketplace holding the order.")
def order_status(order_id: str, status: str, config_path: Path | None, marketplace: str) -> None:
    """Move a sandbox marketplace order, as the marketplace would (paid, cancelled…)."""
    project = _project(config_path)
    _control(
        _marketplace_url(project, marketplace), f"/_sandbox/orders/{order_id}/status", {"status": status}
    )
    console().print(f"{marketplace} order {order_id} is now {status}")


@sandbox.command()
@click.argument("vtex_order_id")
@config_option
@click.option("--number", help="Invoice number (default: one is made up).")
@click.option("--no-tracking", is_flag=True, help="Invoice without a tracking number (not yet shipped).")
def invoice(vtex_order_id: str, config_path: Path | None, number: str | None, no_tracking: bool) -> None:
    """Invoice a VTEX order in the sandbox with a tracking number, as the store's ERP would."""
    project = _project(config_path)
    body: dict[str, object] = {"tracking": not no_tracking}
    if number:
        body["number"] = number
    answer = _control(_vtex_url(project), f"/_sandbox/orders/{vtex_order_id}/invoice", body)
    console().print(f"VTEX order {vtex_order_id} invoiced: {answer.get('invoiceNumber', number or '')}")


@sandbox.command(name="cancel")
@click.argument("vtex_order_id")
@config_option
@click.option("--reason", default="cancelled by the store", show_default=True)
def cancel_in_vtex(vtex_order_id: str, config_path: Path | None, reason: str) -> None:
    """Cancel a VTEX order in the sandbox, as a store operator would."""
    project = _project(config_path)
    _control(_vtex_url(project), f"/_sandbox/orders/{vtex_order_id}/cancel", {"reason": reason})
    console().print(f"VTEX order {vtex_order_id} cancelled")


@sandbox.command()
@click.argument("sku_id")
@click.argument("quantity", type=click.IntRange(min=0))
@config_option
@click.option("--warehouse", help="The warehouse to set (default: every warehouse of the SKU).")
def stock(sku_id: str, quantity: int, config_path: Path | None, warehouse: str | None) -> None:
    """Set a SKU's stock in the sandbox's VTEX, as the store's admin would; VTEX notifies every
    affiliate (the project's `tradepost serve`)."""
    project = _project(config_path)
    body: dict[str, object] = {"sku_id": sku_id, "quantity": quantity}
    if warehouse is not None:
        body["warehouse"] = warehouse
    answer = _control(_vtex_url(project), "/_sandbox/stock", body)
    warehouses = ", ".join(map(str, _listed(answer, "warehouses")))
    console().print(f"VTEX SKU {sku_id}: stock {quantity} in warehouse(s) {warehouses}")
    _print_notified(answer)


@sandbox.command()
@click.argument("sku_id")
@click.argument("price")
@config_option
def price(sku_id: str, price: str, config_path: Path | None) -> None:
    """Set a SKU's selling price (e.g. 79.90) in every trade policy of the sandbox's VTEX, as the
    store's admin would; VTEX notifies every affiliate (the project's `tradepost serve`)."""
    amount = _price(price)
    project = _project(config_path)
    answer = _control(_vtex_url(project), "/_sandbox/price", {"sku_id": sku_id, "price": str(amount)})
    console().print(f"VTEX SKU {sku_id}: selling price {amount} in every trade policy")
    _print_notified(answer)


MAX_PRICE = Decimal("1000000000")
"""The largest price the sandbox takes (a typo like 1e30 is refused, not sent)."""


def _price(text: str) -> Decimal:
    """PRICE as a Decimal above 0 and below a billion with at most two decimals (79.90), else a
    usage error."""
    try:
        amount = Decimal(text)
    except InvalidOperation:
        amount = Decimal("NaN")
    exponent = amount.as_tuple().exponent
    if (
        not amount.is_finite()
        or not 0 < amount < MAX_PRICE
        or (isinstance(exponent, int) and exponent < -2 and amount != round(amount, 2))
    ):
        raise click.BadParameter(
            f"{text!r} is not a price above 0 and below {MAX_PRICE:,} with at most two decimals",
            param_hint="PRICE",
        )
    return amount.quantize(Decimal("0.01"))


def _listed(answer: dict[str, object], key: str) -> list[object]:
    value = answer.get(key)
    return value if isinstance(value, list) else []


def _print_notified(answer: dict[str, object]) -> None:
    notified = _listed(answer, "notified")
    if notified:
        console().print(f"notifying affiliate(s) {', '.join(map(str, notified))}")
    else:
        console().print("no affiliate to notify (the sandbox registers one per marketplace)")


def _marketplace_url(project: Project, name: str) -> str:
    url = project.marketplace(name).base_url
    if not url or not url.startswith("http://127.0.0.1"):
        raise TradepostError(f"{name} in {project.path} is not a sandbox stand-in (no 127.0.0.1 base_url)")
    return url


def _vtex_url(project: Project) -> str:
    account = vtex_orders_account(project)
    url = account[0].base_url if account else None
    if not url or not url.startswith("http://127.0.0.1"):
        raise TradepostError(f"the VTEX account in {project.path} is not the sandbox stand-in")
    return url


def _control(base_url: str, path: str, body: dict[str, object]) -> dict[str, object]:
    """POST to a sandbox control route; its refusal becomes a plain error message."""
    try:
        response = httpx.post(base_url + path, json=body, timeout=10.0)
    except httpx.HTTPError as exc:
        raise TradepostError(
            f"the sandbox at {base_url} does not answer ({exc}); is `tradepost sandbox` running?"
        ) from None
    try:
        answer = response.json()
    except ValueError:
        answer = {}
    if response.status_code >= 400:
        message = answer.get("message") or answer.get("error") if isinstance(answer, dict) else None
        raise TradepostError(f"the sandbox refused: {message or response.text[:200]}")
    return answer if isinstance(answer, dict) else {}
