"""Sandbox sample data: the files the example notebooks (docs/examples/) read, uploaded into the
sandbox's data bucket and indexed by its registry before ``seed`` returns.

* ``aia_0094``: SDO AIA 94 Å-like images as FITS (astropy), each with a known mean;
* ``mms1_fgm_brst_l2``: MMS1 FGM burst-like magnetic field files as CDF (cdflib), with the real
  variables ``Epoch`` and ``mms1_fgm_b_gse_brst_l2``;
* ``goes16_xrsf_l2_flx1s``: GOES-16 XRS 1-s flux-like daily files as NetCDF-4 (xarray).

The keys follow the default instance's dataset patterns, which are those of the real archives.

cdflib and xarray are researcher libraries: they are installed in the researcher environment
(``.venv-researcher``, the packages of the researcher image) and not in the app's. So this file
is also a script that the researcher environment runs (``python samples.py cdf|netcdf OUT_DIR
FIRST COUNT``) to write those files, which the sandbox then uploads. The files are written by
the very libraries the notebooks read them with, and the app needs no science stack beyond
astropy; the script part imports nothing but the standard library at the top for that reason.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from heliocloud.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]
FIRST = datetime(2026, 1, 1, tzinfo=UTC)
AIA, MMS, GOES = "aia_0094", "mms1_fgm_brst_l2", "goes16_xrsf_l2_flx1s"
AIA_CADENCE = timedelta(minutes=4)
MMS_SPACING = timedelta(hours=6)      # one burst interval every 6 hours
MMS_SECONDS, MMS_RATE = 30, 128       # 30 s of 128 Hz burst data per file
UPLOAD_THREADS = 8                    # as many as the registry has pollers


# ------------------------------------------------------------------ keys (the archives' layouts)
def aia_key(when: datetime) -> str:
    """The aia_0094 layout: sdo/aia/YYYYMMDD/0094/sdo_aia_h2_YYYYMMDDTHHMMSS_0094_v1.fits."""
    return f"sdo/aia/{when:%Y%m%d}/0094/sdo_aia_h2_{when:%Y%m%dT%H%M%S}_0094_v1.fits"


def mms_key(when: datetime) -> str:
    """MMS's layout: mms/mms1/fgm/brst/l2/YYYY/MM/DD/mms1_fgm_brst_l2_YYYYMMDDHHMMSS_v4.18.0.cdf."""
    return f"mms/mms1/fgm/brst/l2/{when:%Y/%m/%d}/mms1_fgm_brst_l2_{when:%Y%m%d%H%M%S}_v4.18.0.cdf"


def goes_key(day: datetime) -> str:
    """NOAA's layout: goes/goes16/xrs/l2/flx1s/YYYY/MM/sci_xrsf-l2-flx1s_g16_dYYYYMMDD_v2-2-0.nc."""
    return f"goes/goes16/xrs/l2/flx1s/{day:%Y/%m}/sci_xrsf-l2-flx1s_g16_d{day:%Y%m%d}_v2-2-0.nc"


# ------------------------------------------------------------------ file contents
def sample_image(when: datetime, index: int) -> tuple[bytes, float]:
    """A small but real AIA-like FITS file: a 64×64 float32 image, and its mean (in float64)."""
    import numpy as np
    from astropy.io import fits

    rng = np.random.default_rng(index)
    image = (rng.random((64, 64), dtype=np.float32) * 100 + index % 997).astype(np.float32)
    header = fits.Header({"TELESCOP": "SDO/AIA", "INSTRUME": "AIA_4", "WAVELNTH": 94,
                          "DATE-OBS": when.strftime("%Y-%m-%dT%H:%M:%S.000"), "BUNIT": "DN"})
    buffer = io.BytesIO()
    fits.PrimaryHDU(image, header=header).writeto(buffer)
    return buffer.getvalue(), float(image.mean(dtype=np.float64))


def write_mms_cdf(path: Path, start: datetime, index: int) -> None:
    """An MMS1 FGM burst-like CDF: TT2000 ``Epoch`` and the (N, 4) ``mms1_fgm_b_gse_brst_l2``
    (Bx, By, Bz, |B| in nT), with the ISTP attributes that tools look for."""
    import cdflib
    import numpy as np

    count = MMS_SECONDS * MMS_RATE
    first = cdflib.cdfepoch.compute_tt2000([start.year, start.month, start.day, start.hour, start.minute,
                                            start.second, 0, 0, 0])
    epoch = first + np.arange(count, dtype=np.int64) * (1_000_000_000 // MMS_RATE)
    t = np.arange(count) / MMS_RATE
    rng = np.random.default_rng(index)
    xyz = np.stack([10 + 3 * np.sin(2 * np.pi * t / 7), -5 + 2 * np.cos(2 * np.pi * t / 11),
                    20 + np.zeros(count)], axis=1) + rng.normal(0, 0.2, (count, 3))
    b = np.column_stack([xyz, np.linalg.norm(xyz, axis=1)]).astype(np.float32)

    cdf = cdflib.cdfwrite.CDF(str(path), delete=True)
    cdf.write_globalattrs({"Project": {0: "STP>Solar-Terrestrial Physics"},
                           "Source_name": {0: "MMS1>MMS Satellite Number 1"},
                           "Descriptor": {0: "FGM>Fluxgate Magnetometer"}, "Data_type": {0: "brst_l2"},
                           "Logical_file_id": {0: path.stem}})
    cdf.write_var({"Variable": "Epoch", "Data_Type": cdf.CDF_TIME_TT2000, "Num_Elements": 1, "Rec_Vary": True,
                   "Dim_Sizes": []},
                  var_attrs={"FIELDNAM": "Time", "UNITS": "ns", "VAR_TYPE": "support_data"}, var_data=epoch)
    cdf.write_var({"Variable": "mms1_fgm_b_gse_brst_l2", "Data_Type": cdf.CDF_REAL4, "Num_Elements": 1,
                   "Rec_Vary": True, "Dim_Sizes": [4]},
                  var_attrs={"DEPEND_0": "Epoch", "UNITS": "nT", "FIELDNAM": "B GSE",
                             "CATDESC": "Magnetic field vector in GSE (Bx, By, Bz) and its magnitude",
                             "VAR_TYPE": "data"},
                  var_data=b)
    cdf.close()


def write_goes_netcdf(path: Path, day: datetime, index: int) -> None:
    """A GOES-16 XRS 1-s flux-like daily NetCDF-4 file: ``time`` (seconds since 2000-01-01 12:00
    UTC, as NOAA writes it) and ``xrsa_flux`` / ``xrsb_flux`` in W m⁻², a quiet Sun with one flare."""
    import numpy as np
    import xarray as xr

    seconds = np.arange(86400, dtype=np.float64)
    j2000 = datetime(2000, 1, 1, 12, tzinfo=UTC)
    time_values = (day - j2000).total_seconds() + seconds
    peak = 3600.0 * (6 + (4 * index) % 12)  # the flare peaks at 06, 10 or 14 UTC
    flare = np.exp(-0.5 * ((seconds - peak) / 600.0) ** 2)
    rng = np.random.default_rng(index)
    xrsb = (2e-7 * (1 + 0.02 * rng.standard_normal(seconds.size)) + 5e-6 * flare).astype(np.float32)
    xrsa = (1e-8 * (1 + 0.02 * rng.standard_normal(seconds.size)) + 8e-7 * flare).astype(np.float32)
    flux = {"units": "W m-2", "coordinates": "time"}
    dataset = xr.Dataset(
        {"xrsa_flux": ("time", xrsa, {**flux, "long_name": "XRS-A (0.05-0.4 nm) irradiance"}),
         "xrsb_flux": ("time", xrsb, {**flux, "long_name": "XRS-B (0.1-0.8 nm) irradiance"})},
        coords={"time": ("time", time_values, {"units": "seconds since 2000-01-01 12:00:00",
                                               "long_name": "center time of the 1-s average"})},
        attrs={"title": "GOES-R XRS L2 1-second irradiance averages", "platform": "g16",
               "instrument": "XRS", "time_coverage_start": f"{day:%Y-%m-%dT%H:%M:%S.0Z}"},
    )
    encoding = {name: {"zlib": True, "complevel": 4} for name in ("xrsa_flux", "xrsb_flux")}
    dataset.to_netcdf(path, engine="h5netcdf", encoding=encoding)


WRITERS: dict[str, tuple[Callable[[datetime], str], Callable[[Path, datetime, int], None], timedelta]] = {
    "cdf": (mms_key, write_mms_cdf, MMS_SPACING),
    "netcdf": (goes_key, write_goes_netcdf, timedelta(days=1)),
}


def write_files(kind: str, out_dir: Path, first: datetime, count: int) -> None:
    """Write ``count`` files of one kind under ``out_dir``, each at its object key (relative path)."""
    key_of, write, spacing = WRITERS[kind]
    for index in range(count):
        when = first + index * spacing
        path = out_dir / key_of(when)
        path.parent.mkdir(parents=True, exist_ok=True)
        write(path, when, index)


# ------------------------------------------------------------------ seeding the sandbox
def seed(sandbox: Sandbox, *, aia_files: int = 48, mms_files: int = 3, goes_days: int = 3,
         first: datetime = FIRST, python: Path | None = None, timeout: float = 300) -> dict:
    """Upload the samples, wait until the registry has indexed every one, write
    ``state_dir/samples.json`` (its path goes to ``endpoints["samples"]``) and return it:
    {aia_0094: {datakey: mean}, mms1_fgm_brst_l2: [datakeys], goes16_xrsf_l2_flx1s: [datakeys]}."""
    from heliocloud.registry_config import bucket_rules
    from heliocloud.sandbox.hub import RESEARCHER_ENV

    python = python or RESEARCHER_ENV / "bin" / "python"
    # `heliocloud sandbox --aia-samples N` (a benchmark seeds 1,000).
    aia_files = sandbox.options.get("samples", {}).get("aia_files", aia_files)

    if not Path(python).exists():
        raise FileNotFoundError(f"{python} is missing: the CDF and NetCDF samples are written by the researcher "
                                "environment (`make setup` installs it)")
    rules = bucket_rules(sandbox.config, sandbox.region)
    s3 = sandbox.client("s3")
    with tempfile.TemporaryDirectory(prefix="samples-") as tmp:
        # The researcher environment writes the CDF and NetCDF files while the AIA images are made.
        writers = {dataset: (Path(tmp) / kind, subprocess.Popen(
            [str(python), __file__, kind, str(Path(tmp) / kind), first.isoformat(), str(count)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
            for dataset, kind, count in ((MMS, "cdf", mms_files), (GOES, "netcdf", goes_days))}
        uploads: dict[str, dict[str, bytes | Path]] = {AIA: {}}
        means: dict[str, float] = {}
        for index in range(aia_files):
            when = first + index * AIA_CADENCE
            uploads[AIA][aia_key(when)], means[aia_key(when)] = sample_image(when, index)
        for dataset, (root, proc) in writers.items():
            output, _ = proc.communicate(timeout=timeout)
            if proc.returncode:
                raise RuntimeError(f"{python} could not write the {dataset} samples:\n{output[-3000:]}")
            uploads[dataset] = {p.relative_to(root).as_posix(): p for p in sorted(root.rglob("*")) if p.is_file()}
        expected = _upload(s3, rules, uploads)
    _wait_for_index(s3, rules, expected, timeout=timeout)
    samples = {AIA: {expected[AIA][key]: means[key] for key in uploads[AIA]},
               MMS: sorted(expected[MMS].values()), GOES: sorted(expected[GOES].values())}
    path = sandbox.state_dir / "samples.json"
    path.write_text(json.dumps(samples, indent=2) + "\n")
    sandbox.endpoints["samples"] = str(path)
    return samples


def bucket_of(rules: dict, dataset: str) -> str:
    """The registry bucket whose rules hold ``dataset``."""
    for name, bucket in rules.items():
        if any(d.id == dataset for d in bucket.datasets):
            return name
    raise LookupError(f"no registry bucket of this instance has dataset {dataset!r}: the samples need it")


def _upload(s3, rules: dict, uploads: dict[str, dict[str, bytes | Path]]) -> dict[str, dict[str, str]]:
    """Put every object with a pool of threads (boto3 clients are thread-safe); returns
    {dataset: {key: datakey}}. Each key must classify as its dataset under the instance's rules,
    or the wait for the index would never end."""
    jobs = []
    expected: dict[str, dict[str, str]] = {}
    for dataset, objects in uploads.items():
        bucket = bucket_of(rules, dataset)
        expected[dataset] = {}
        for key, body in objects.items():
            parsed = rules[bucket].classify(key, 0)
            if getattr(parsed, "dataset", None) != dataset:
                raise ValueError(f"sample key {key!r} is not a {dataset} key under this instance's rules: {parsed}")
            expected[dataset][key] = parsed.row.datakey
            jobs.append((bucket, key, body))

    def put(job: tuple[str, str, bytes | Path]) -> None:
        bucket, key, body = job
        s3.put_object(Bucket=bucket, Key=key, Body=body if isinstance(body, bytes) else body.read_bytes())

    with ThreadPoolExecutor(UPLOAD_THREADS) as pool:
        list(pool.map(put, jobs))
    return expected


def _wait_for_index(s3, rules: dict, expected: dict[str, dict[str, str]], *, timeout: float) -> None:
    """Poll the index CSVs the samples land in until every datakey is listed."""
    from hc_registry.catalog import csv_to_rows

    missing: dict[tuple[str, str], set[str]] = {}
    for dataset, keys in expected.items():
        bucket = bucket_of(rules, dataset)
        for key, datakey in keys.items():
            index_key = rules[bucket].index_key(rules[bucket].classify(key, 0).partition)
            missing.setdefault((bucket, index_key), set()).add(datakey)
    deadline = time.monotonic() + timeout
    while missing:
        for (bucket, index_key), datakeys in list(missing.items()):
            try:
                body = s3.get_object(Bucket=bucket, Key=index_key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                continue
            datakeys -= {row.datakey for row in csv_to_rows(body)}
            if not datakeys:
                del missing[(bucket, index_key)]
        if missing and time.monotonic() > deadline:
            left = sum(len(d) for d in missing.values())
            raise TimeoutError(f"the registry had not indexed {left} sample files after {timeout:.0f} s")
        if missing:
            time.sleep(0.5)


if __name__ == "__main__":  # the researcher environment: python samples.py cdf|netcdf OUT_DIR FIRST COUNT
    _kind, _out, _first, _count = sys.argv[1:]
    write_files(_kind, Path(_out), datetime.fromisoformat(_first), int(_count))
