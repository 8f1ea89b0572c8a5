"""Names of products in the STAC API: one collection per product type, one item per product.

The service's routes that link to products (job results, the web UI) use these functions so
that every link points where the STAC routes serve the product.
"""

from __future__ import annotations

COLLECTIONS: dict[str, tuple[str, str]] = {
    "l2a": ("sentinel-2-l2a", "Sentinel-2 L2A surface reflectance (Sen2Cor)"),
    "l2a_maja": ("sentinel-2-l2a-maja", "Sentinel-2 L2A surface reflectance (MAJA)"),
    "landsat_l2": ("landsat-c2-l2", "Landsat 8/9 Collection 2 Level-2"),
    "s1_amp": ("sentinel-1-amplitude", "Sentinel-1 backscatter (amplitude)"),
    "s1_cohe": ("sentinel-1-coherence", "Sentinel-1 6-day interferometric coherence"),
    "mdb": ("mdb", "Markers database: per parcel, acquisition and signal statistics"),
    "s4c_l4a": ("l4a", "L4A crop type"),
    "s4c_l4b": ("l4b", "L4B grassland mowing"),
    "s4c_l4c": ("l4c", "L4C agricultural practices"),
    "s4c_baresoil": ("baresoil", "Bare soil periods and soil-cover compliance"),
    "s4c_heterogeneity": ("heterogeneity", "Sub-parcel heterogeneity"),
    "s4c_multiannual": ("multiannual", "Multi-annual land-cover change"),
}
"""Catalogue ``product_type`` -> (STAC collection id, title)."""


def collection_id(product_type: str) -> str:
    """The STAC collection of a catalogue product type (unknown types keep their own name)."""
    known = COLLECTIONS.get(product_type)
    return known[0] if known is not None else product_type.replace("_", "-")


def item_id(site_short_name: str, product_name: str) -> str:
    """The STAC item id of a product: product names are unique within a site only."""
    return f"{site_short_name}.{product_name}"


def item_path(product_type: str, site_short_name: str, product_name: str) -> str:
    """The path (after the base URL) of a product's STAC item."""
    return (
        f"/stac/collections/{collection_id(product_type)}/items/"
        f"{item_id(site_short_name, product_name)}"
    )
