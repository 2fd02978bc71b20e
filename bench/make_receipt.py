"""Write a bulk_receive CSV of N rows for the demo catalogue to stdout.

Usage: python bench/make_receipt.py ROWS [WAREHOUSES] > receipt.csv
Rows are distinct (SKU, warehouse) pairs: DEMO-000000..DEMO-(ROWS/WAREHOUSES),
spread over the first WAREHOUSES demo sites, quantities 1..500.
"""

import sys

CODES = ["BER", "HAM", "MUC", "CGN", "FRA", "LEJ", "STR", "DUS", "DRS", "NUE"]


def main() -> None:
    rows = int(sys.argv[1])
    sites = CODES[: int(sys.argv[2]) if len(sys.argv) > 2 else 10]
    out = sys.stdout
    out.write("sku,warehouse,quantity\n")
    for i in range(rows):
        n, site = divmod(i, len(sites))
        out.write(f"DEMO-{n:06d},{sites[site]},{1 + (i * 7919) % 500}\n")


if __name__ == "__main__":
    main()
