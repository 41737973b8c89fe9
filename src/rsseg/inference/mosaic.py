"""What a GIS user opens after a region's prediction: an index of the scenes and a mosaic of their class rasters.

* ``index.geojson``: one feature per scene of the region, its footprint in EPSG:4326 (RFC 7946), with the input,
  the class raster, the status (done, skipped, failed, running, missing), the class counts and the error of a
  failed scene. QGIS, GDAL and geopandas open it as it is.
* ``mosaic.vrt``: a GDAL virtual raster over the class rasters that share a CRS (one ``mosaic_<crs>.vrt`` per CRS
  when they do not), with the class names and colour table of the single-scene outputs, so the whole region opens
  as one coloured layer. It is written as VRT XML here: rasterio has no binding for GDAL's BuildVRT and the
  ``gdalbuildvrt`` program is not part of rasterio's wheels; a mosaic of same-CRS, north-up rasters is a few
  lines of that documented format. Source paths are relative to the VRT, so the folder can be moved.
* ``mosaic_cog.tif`` (``mosaic=cog``): the VRT copied into one Cloud-Optimised GeoTIFF with overviews by the
  writer single scenes use, for viewers that do not read VRT.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio
from rasterio.transform import array_bounds
from rasterio.warp import transform_geom

from rsseg.data.labels import NODATA
from rsseg.runtime.console import warn
from rsseg.runtime.files import replaced_when_complete
from rsseg.runtime.results import write_results

INDEX = "index.geojson"
MOSAIC = "mosaic.vrt"
MOSAIC_COG = "mosaic_cog.tif"


def footprint(crs: str | None, bounds) -> dict | None:
    """A scene's bounds as a GeoJSON polygon in EPSG:4326 (None without a CRS)."""
    if not crs or bounds is None:
        return None
    left, bottom, right, top = bounds
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    return transform_geom(crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=7)


def write_index(path: Path, entries: list[dict]) -> Path:
    """``entries``: per scene ``scene`` (a :class:`~rsseg.inference.catalogue.SceneInfo`), ``classes`` (the
    class raster's path), ``status`` and ``record`` (the scene's record or None)."""
    features = []
    for entry in entries:
        scene, record = entry["scene"], entry.get("record") or {}
        properties = {
            "input": str(scene.path), "classes": str(entry["classes"]), "status": entry["status"],
            "height": scene.height, "width": scene.width, "km2": scene.km2, "crs": scene.crs,
            "class_counts": record.get("class_counts"), "tiles": record.get("tiles"),
            "shard": record.get("shard"), "error": record.get("error") or scene.error,
        }
        features.append({"type": "Feature", "geometry": footprint(scene.crs, scene.bounds), "properties": properties})
    return write_results(path, {"type": "FeatureCollection", "features": features})


def write_mosaics(folder: Path, classes: list[Path], cog: bool = False) -> list[Path]:
    """VRT mosaics (and with ``cog`` a COG of each) over existing class rasters, one per CRS; returns them."""
    groups: dict[str, list[tuple[Path, dict]]] = {}
    for path in classes:
        with rasterio.open(path) as handle:
            if handle.transform.b or handle.transform.d:
                warn(f"{path}: rotated transform; left out of the mosaic")
                continue
            info = {"crs": handle.crs, "transform": handle.transform, "width": handle.width,
                    "height": handle.height, "tags": handle.tags(), "colormap": handle.colormap(1),
                    "block": handle.block_shapes[0]}
        groups.setdefault(info["crs"].to_string() if info["crs"] else "", []).append((path, info))
    written = []
    for key, members in groups.items():
        if len(groups) == 1:
            name = MOSAIC
        else:
            name = f"mosaic_{(key or 'no_crs').replace(':', '-').replace(' ', '_')[:40]}.vrt"
        vrt = write_vrt(folder / name, members)
        written.append(vrt)
        if cog:
            from rsseg.inference.geotiff import to_cog

            target = folder / (MOSAIC_COG if name == MOSAIC else Path(name).stem + "_cog.tif")
            with replaced_when_complete(target) as tmp:
                to_cog(vrt, tmp, "nearest")
            written.append(target)
    return written


def write_vrt(path: Path, members: list[tuple[Path, dict]]) -> Path:
    """A VRT over same-CRS, north-up class rasters at the finest of their resolutions."""
    xres = min(abs(info["transform"].a) for _, info in members)
    yres = min(abs(info["transform"].e) for _, info in members)
    boxes = [array_bounds(info["height"], info["width"], info["transform"]) for _, info in members]
    left, top = min(b[0] for b in boxes), max(b[3] for b in boxes)
    width = round((max(b[2] for b in boxes) - left) / xres)
    height = round((top - min(b[1] for b in boxes)) / yres)
    first = members[0][1]
    crs = first["crs"]
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
    if crs:
        lines.append(f"  <SRS>{escape(crs.to_wkt())}</SRS>")  # axes in GIS order (x = easting or longitude)
    lines.append(f"  <GeoTransform>{left!r}, {xres!r}, 0.0, {top!r}, 0.0, {-yres!r}</GeoTransform>")
    tags = {k: v for k, v in first["tags"].items() if k == "CLASS_NAMES" or k.startswith("CLASS_")}
    lines.append("  <Metadata>")
    for key, value in {"RSSEG_OUTPUT": "mosaic", **tags}.items():
        lines.append(f'    <MDI key="{escape(key)}">{escape(str(value))}</MDI>')
    lines.append("  </Metadata>")
    lines.append('  <VRTRasterBand dataType="Byte" band="1">')
    lines.append(f"    <NoDataValue>{NODATA}</NoDataValue>")
    lines.append("    <ColorInterp>Palette</ColorInterp>")
    lines.append("    <Description>class</Description>")
    try:
        names = json.loads(first["tags"].get("CLASS_NAMES", "[]"))
    except ValueError:
        names = []
    if names:
        lines.append("    <CategoryNames>")
        lines.extend(f"      <Category>{escape(str(n))}</Category>" for n in names)
        lines.append("    </CategoryNames>")
    lines.append("    <ColorTable>")
    for index in range(256):
        r, g, b, a = first["colormap"].get(index, (0, 0, 0, 0))
        lines.append(f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>')
    lines.append("    </ColorTable>")
    for (source, info), box in zip(members, boxes):
        t, w, h = info["transform"], info["width"], info["height"]
        x_off, y_off = (box[0] - left) / xres, (top - box[3]) / yres
        relative = os.path.relpath(Path(source).resolve(), Path(path).resolve().parent)
        block_y, block_x = info["block"]
        lines += [
            "    <ComplexSource>",
            f'      <SourceFilename relativeToVRT="1">{escape(relative)}</SourceFilename>',
            "      <SourceBand>1</SourceBand>",
            f'      <SourceProperties RasterXSize="{w}" RasterYSize="{h}" DataType="Byte" '
            f'BlockXSize="{block_x}" BlockYSize="{block_y}"/>',
            f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>',
            f'      <DstRect xOff="{x_off:.10g}" yOff="{y_off:.10g}" xSize="{abs(t.a) * w / xres:.10g}" '
            f'ySize="{abs(t.e) * h / yres:.10g}"/>',
            f"      <NODATA>{NODATA}</NODATA>",
            "    </ComplexSource>",
        ]
    lines += ["  </VRTRasterBand>", "</VRTDataset>", ""]
    with replaced_when_complete(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
