"""Chest X-ray sites for Study B (Synthetically Enhanced): CheXpert, MIMIC-CXR-JPG or a generic CSV, read
into one frame per site (image path, patient, age, sex, race, split hint, the 14 CheXpert findings).

Formats: /work/shared/reference/papers.md §3.4 (CheXpert), §3.5 (MIMIC-CXR-JPG), §2.7 (the generic CSV is
the schema of Study B's evaluation script), §2.8 (Study B's published split lists), §2.4 (the 22-value
conditioning vector). Labels stay raw (1, 0, -1, blank = NaN) until a consumer picks a policy:
``condition_vectors`` for the DDPM, ``training_targets`` for the classifier.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .camus import to_square_uint8
from ..core.errors import PipelineError
from ..core.imageset import SPLITS
from .folders import describe

log = logging.getLogger(__name__)

FINDINGS = ["Pleural Other", "Fracture", "Support Devices", "Pleural Effusion", "Pneumothorax", "Atelectasis",
            "Pneumonia", "Consolidation", "Edema", "Lung Lesion", "Lung Opacity", "Cardiomegaly",
            "Enlarged Cardiomediastinum", "No Finding"]
RACES = ("American Indian/Alaskan Native", "African American", "White", "Pacific Islander", "Asian")
SEXES = ("Female", "Male")
COND_NAMES = ["age_decade", *(f"sex:{s}" for s in SEXES), *(f"race:{r}" for r in RACES),
              *(f"finding:{f}" for f in FINDINGS)]
FORMATS = ("chexpert", "mimic", "csv")
VIEWS = ("frontal", "all")
CHEXPERT_RELEASES = ("CheXpert-v1.0-small", "CheXpert-v1.0")
MIMIC_SPLITS = {"train": "train", "validate": "val", "test": "test"}
UNCERTAIN_POLICIES = {"ignore": np.nan, "zeros": 0.0, "ones": 1.0}
SEX_ALIASES = {"female": "Female", "f": "Female", "male": "Male", "m": "Male"}
SETUP_HINTS = {
    "chexpert": "download CheXpert (https://stanfordmlgroup.github.io/competitions/chexpert/) and set root to the "
                "folder holding CheXpert-v1.0-small/ or CheXpert-v1.0/ (or to that folder itself)",
    "mimic": "MIMIC-CXR-JPG needs PhysioNet credentialed access (https://physionet.org/content/mimic-cxr-jpg/2.0.0/); "
             "set root to the folder holding mimic-cxr-2.0.0-metadata.csv.gz and files/",
    "csv": "set root to the folder that the CSV's Path column is relative to",
}
# Raw race strings (CheXpert PRIMARY_RACE, MIMIC-IV admissions.race, Study B's own names) -> RACES; None =
# deliberately unknown. Study B's mapping is unpublished and, of CheXpert's strings, only "White", "Other" and
# "Unknown" are confirmed (papers.md §3.4); the rest are the spellings reported in the literature. Race wins
# over ethnicity ("White, Hispanic" -> White); Hispanic/Latino alone carries no race. Keys match
# case-insensitively; any other string counts as unknown and is logged, so a site extends this via race_map.
_RACE_SPELLINGS = {
    "White": ("White", "White, non-Hispanic", "White, Hispanic", "White or Caucasian", "WHITE - OTHER EUROPEAN",
              "WHITE - RUSSIAN", "WHITE - EASTERN EUROPEAN", "WHITE - BRAZILIAN", "PORTUGUESE"),
    "African American": ("African American", "Black or African American", "Black, non-Hispanic", "Black, Hispanic",
                         "BLACK/AFRICAN AMERICAN", "BLACK/CAPE VERDEAN", "BLACK/CARIBBEAN ISLAND", "BLACK/AFRICAN"),
    "Asian": ("Asian", "Asian, non-Hispanic", "Asian, Hispanic", "ASIAN - CHINESE", "ASIAN - SOUTH EAST ASIAN",
              "ASIAN - ASIAN INDIAN", "ASIAN - KOREAN"),
    "Pacific Islander": ("Pacific Islander", "Native Hawaiian or Other Pacific Islander",
                         "Pacific Islander, non-Hispanic", "Pacific Islander, Hispanic"),
    "American Indian/Alaskan Native": ("American Indian/Alaskan Native", "American Indian or Alaska Native",
                                       "Native American, non-Hispanic", "Native American, Hispanic",
                                       "AMERICAN INDIAN/ALASKA NATIVE"),
    None: ("Other", "Other, non-Hispanic", "Other, Hispanic", "Unknown", "Patient Refused",
           "Race and Ethnicity Unknown", "UNABLE TO OBTAIN", "PATIENT DECLINED TO ANSWER", "MULTIPLE RACE/ETHNICITY",
           "HISPANIC OR LATINO", "HISPANIC/LATINO", "SOUTH AMERICAN"),
}
DEFAULT_RACE_MAP = {raw: race for race, spellings in _RACE_SPELLINGS.items() for raw in spellings}


class CxrError(PipelineError, ValueError):
    """A one-line, user-facing problem with a chest X-ray site: names the file (and column) and the fix."""


# ---------------------------------------------------------------- small readers

def _read_table(path, hint: str, required=()) -> pd.DataFrame:
    """A .csv / .csv.gz (or .xlsx, CheXpert's demographics) with the ``required`` columns."""
    path = Path(path)
    if not path.is_file():
        raise CxrError(f"{path}: file not found; {hint}")
    try:  # .xlsx needs openpyxl; without it pandas' ImportError below says so
        df = pd.read_excel(path) if path.suffix.lower() == ".xlsx" else pd.read_csv(path, low_memory=False)
    except Exception as e:  # noqa: BLE001 - pandas, gzip and openpyxl raise many types for one bad file
        raise CxrError(f"{path}: unreadable table ({type(e).__name__}: {' '.join(str(e).split())}); {hint}") from e
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise CxrError(f"{path}: column {missing[0]!r} is missing (has {', '.join(map(str, df.columns[:8]))}"
                       f"{', ...' if len(df.columns) > 8 else ''}); {hint}")
    return df


def _labels(df: pd.DataFrame, path) -> pd.DataFrame:
    """The 14 findings as float (1, 0, -1, NaN); a column the source lacks is all NaN."""
    out = {}
    for name in FINDINGS:
        raw = df[name] if name in df.columns else pd.Series(np.nan, index=df.index)
        vals = pd.to_numeric(raw, errors="coerce").to_numpy(float)
        bad = raw.notna().to_numpy() & ~np.isin(vals, (1.0, 0.0, -1.0))
        if bad.any():
            raise CxrError(f"{path}: column {name!r} holds {raw.to_numpy()[bad][0]!r}; "
                           "labels must be 1.0, 0.0, -1.0 or blank")
        out[name] = vals
    return pd.DataFrame(out, index=df.index)


def _race_lookup(race_map: dict | None) -> dict:
    race_map = DEFAULT_RACE_MAP if race_map is None else race_map
    bad = [v for v in race_map.values() if v is not None and v not in RACES]
    if bad:
        raise CxrError(f"race_map maps to {bad[0]!r}; values must be one of {list(RACES)} or null (unknown)")
    return {str(k).strip().casefold(): v for k, v in race_map.items()}


def _map_races(values, lookup: dict, where) -> list:
    """Raw race strings -> RACES / None; strings the map does not know are logged once with counts."""
    keys = [None if pd.isna(v) else str(v).strip().casefold() for v in values]
    unknown = pd.Series([v for v, k in zip(values, keys) if k is not None and k not in lookup], dtype=object)
    if len(unknown):
        top = ", ".join(f"{v!r} ({n})" for v, n in unknown.value_counts().head(5).items())
        log.warning("%s: %d race values are not in race_map and count as unknown: %s", where, len(unknown), top)
    return [lookup.get(k) for k in keys]


def _key(path) -> str:
    """A path relative to the release root as label and split files spell it, without a leading ./,
    CheXpert-v1.0[-small]/ (so -small and full-resolution lists match) or MIMIC's files/."""
    parts = [p for p in str(path).replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts[1:] if parts and (parts[0] in CHEXPERT_RELEASES or parts[0] == "files") else parts)


# ---------------------------------------------------------------- the three site formats

def _chexpert_base(root: Path, key: str) -> Path:
    """The folder holding train.csv: ``root`` itself or its CheXpert-v1.0[-small]/."""
    found = [root / n for n in CHEXPERT_RELEASES if (root / n / "train.csv").is_file()]
    if len(found) > 1:
        raise CxrError(f"config key '{key}.root' = '{root}' holds both {found[0].name}/ and {found[1].name}/; "
                       "set root to the one you mean")
    base = found[0] if found else root
    if not (base / "train.csv").is_file():
        raise CxrError(f"config key '{key}.root' = '{root}': expected train.csv in it or in "
                       f"{'/ or '.join(CHEXPERT_RELEASES)}/, found {describe(root)}; {SETUP_HINTS['chexpert']}")
    return base


def _read_chexpert(site: dict, root: Path, views: str, races: dict, key: str):
    base = _chexpert_base(root, key)
    tables = []
    for name in ("train.csv", "valid.csv"):  # valid.csv: 200 radiologist-labelled studies, when present
        if name == "train.csv" or (base / name).is_file():
            df = _read_table(base / name, SETUP_HINTS["chexpert"], ("Path", "Frontal/Lateral"))
            df = df[df["Frontal/Lateral"] == "Frontal"] if views == "frontal" else df
            tables.append(df.assign(**_labels(df, base / name)))  # checked per file, to name the file
    df = pd.concat(tables, ignore_index=True)
    # A renamed release folder (e.g. the AIMI download) still names its release in the Path column.
    first = str(df["Path"].iloc[0]).split("/")[0] if len(df) else ""
    release = first if base.name not in CHEXPERT_RELEASES and first in CHEXPERT_RELEASES else base.name
    keys = [_key(p) for p in df["Path"]]
    subjects = [k.split("/")[1] if k.count("/") == 3 else None for k in keys]
    if None in subjects:
        bad = df["Path"].iloc[subjects.index(None)]
        raise CxrError(f"{base}: Path {bad!r} in train.csv/valid.csv is not like {release}/train/patientNNNNN/"
                       "studyK/viewM_frontal.jpg; the label files do not belong to this release")
    age = pd.to_numeric(df["Age"], errors="coerce") if "Age" in df else pd.Series(np.nan, index=df.index)
    sex = df["Sex"] if "Sex" in df else pd.Series(None, index=df.index, dtype=object)
    race = [None] * len(df)
    if site.get("demographics"):
        demo_path = Path(site["demographics"])
        demo = _read_table(demo_path, "give CheXpert's CHEXPERT DEMO table (.xlsx or .csv)",
                           ("PATIENT", "PRIMARY_RACE"))
        demo = demo.assign(PATIENT=demo["PATIENT"].astype(str).str.strip()).drop_duplicates("PATIENT")
        per = demo.set_index("PATIENT").reindex(subjects).set_index(df.index)  # one row per image
        race = _map_races(per["PRIMARY_RACE"].to_numpy(), races, demo_path)
        # train.csv's per-image Sex/Age stay first (Study B used them); the table fills their gaps.
        if "GENDER" in per:
            sex = sex.where(sex.map(lambda v: str(v).strip().casefold() in SEX_ALIASES), per["GENDER"])
        if "AGE_AT_CXR" in per:
            age = age.fillna(pd.to_numeric(per["AGE_AT_CXR"], errors="coerce"))
    out = pd.DataFrame({"key": keys, "path": [str(base / k) for k in keys], "subject": subjects,
                        "age": age.to_numpy(float), "sex": sex.to_numpy(), "race": race, "split_hint": None})
    source = f"{base / 'train.csv'}{' or valid.csv' if len(tables) > 1 else ''}"
    return pd.concat([out, df[FINDINGS]], axis=1), source, {"release": release}


MIMIC_TABLES = ("metadata", "chexpert", "split")


def _mimic_table(root: Path, name: str, key: str) -> Path:
    for ext in (".csv.gz", ".csv"):
        if (root / f"mimic-cxr-2.0.0-{name}{ext}").is_file():
            return root / f"mimic-cxr-2.0.0-{name}{ext}"
    raise CxrError(f"config key '{key}.root' = '{root}': expected mimic-cxr-2.0.0-{name}.csv.gz (or .csv) in it, "
                   f"found {describe(root)}; {SETUP_HINTS['mimic']}")


def _mimic_races(patients_path: Path, subjects: pd.Series, races: dict) -> list:
    """Each subject's race from MIMIC-IV admissions: the one known race of all its admissions; None when none is
    known or they disagree (as biomedia-mira/chexploration does: a conflict is no evidence for either)."""
    adm_path = next((p for p in (patients_path.with_name("admissions.csv.gz"),
                                 patients_path.with_name("admissions.csv")) if p.is_file()), None)
    if adm_path is None:
        log.warning("MIMIC: no admissions.csv(.gz) beside %s; race is unknown for every image", patients_path)
        return [None] * len(subjects)
    adm = _read_table(adm_path, "give MIMIC-IV hosp/admissions.csv.gz", ("subject_id",))
    col = "race" if "race" in adm else "ethnicity"  # MIMIC-IV 1.0 named it ethnicity
    if col not in adm:
        raise CxrError(f"{adm_path}: column 'race' is missing (MIMIC-IV >= 2.0; 'ethnicity' in 1.0)")
    known = adm.assign(race=_map_races(adm[col].to_numpy(), races, adm_path))[["subject_id", "race"]]
    known = known.dropna().drop_duplicates()
    one = known.drop_duplicates("subject_id", keep=False)
    if len(one) < known["subject_id"].nunique():
        log.info("MIMIC: %d subjects whose admissions name different races count as race unknown",
                 known["subject_id"].nunique() - len(one))
    return [None if pd.isna(r) else r for r in subjects.map(one.set_index("subject_id")["race"])]


def _read_mimic(site: dict, root: Path, views: str, races: dict, key: str):
    meta_path, lab_path, split_path = (_mimic_table(root, n, key) for n in MIMIC_TABLES)
    meta = _read_table(meta_path, SETUP_HINTS["mimic"], ("dicom_id", "subject_id", "study_id", "ViewPosition"))
    if views == "frontal":
        meta = meta[meta["ViewPosition"].isin(["PA", "AP"])]
    labels = _read_table(lab_path, SETUP_HINTS["mimic"], ("subject_id", "study_id"))
    df = meta.merge(labels, on=["subject_id", "study_id"], how="inner").reset_index(drop=True)
    if len(df) < len(meta):
        log.warning("MIMIC: %d images have no row in %s and are dropped (no labels)", len(meta) - len(df),
                    lab_path.name)
    split = _read_table(split_path, SETUP_HINTS["mimic"], ("dicom_id", "split")).drop_duplicates("dicom_id")
    odd = sorted(set(split["split"].dropna()) - set(MIMIC_SPLITS))
    if odd:
        raise CxrError(f"{split_path}: column 'split' holds {odd[0]!r}; expected train, validate or test")
    hint = df["dicom_id"].map(split.set_index("dicom_id")["split"].map(MIMIC_SPLITS))
    sid, study = df["subject_id"].astype(str), df["study_id"].astype(str)
    keys = [f"p{s[:2]}/p{s}/s{t}/{d}.jpg" for s, t, d in zip(sid, study, df["dicom_id"])]
    age, sex, race = np.full(len(df), np.nan), [None] * len(df), [None] * len(df)
    if site.get("demographics"):
        pat_path = Path(site["demographics"])
        pat = _read_table(pat_path, "give MIMIC-IV hosp/patients.csv.gz", ("subject_id", "gender", "anchor_age"))
        pat = pat.drop_duplicates("subject_id").set_index("subject_id")
        sex = df["subject_id"].map(pat["gender"]).to_numpy()
        age = df["subject_id"].map(pat["anchor_age"]).astype(float)
        if "anchor_year" in pat and "StudyDate" in df:  # dates are shifted alike in MIMIC-IV and MIMIC-CXR
            years = pd.to_numeric(df["StudyDate"], errors="coerce") // 10000 - df["subject_id"].map(pat["anchor_year"])
            age = age + years.fillna(0)
        age = age.to_numpy(float)
        race = _mimic_races(pat_path, df["subject_id"], races)
    out = pd.DataFrame({"key": keys, "path": [str(root / "files" / k) for k in keys], "subject": sid, "age": age,
                        "sex": sex, "race": race, "split_hint": hint})
    return pd.concat([out, _labels(df, lab_path)], axis=1), meta_path, {}


def _read_csv(site: dict, root: Path, views: str, races: dict, key: str):
    if site.get("demographics"):
        raise CxrError(f"{site['csv']}: demographics is read for chexpert and mimic sites only; "
                       "put PID/Sex/Age/Race columns in the CSV instead")
    path = Path(site["csv"])
    df = _read_table(path, SETUP_HINTS["csv"], ("Path",))
    if not any(f in df for f in FINDINGS):
        raise CxrError(f"{path}: none of the 14 finding columns ({', '.join(FINDINGS[:3])}, ...) is present; "
                       "name them exactly as CheXpert does (case-sensitive)")
    if views == "frontal" and "Frontal/Lateral" in df:
        df = df[df["Frontal/Lateral"] == "Frontal"].reset_index(drop=True)
    if "PID" not in df:
        log.warning("%s: no PID column; every image counts as its own patient", path)
    pid = df["PID"] if "PID" in df else pd.Series(np.nan, index=df.index)
    keys = [_key(p) for p in df["Path"]]
    out = pd.DataFrame({
        "key": keys, "path": [str(root / str(p)) for p in df["Path"]],
        "subject": [k if pd.isna(s) else str(s) for s, k in zip(pid, keys)],
        "age": pd.to_numeric(df["Age"], errors="coerce").to_numpy(float) if "Age" in df else np.nan,
        "sex": df["Sex"].to_numpy() if "Sex" in df else None,
        "race": _map_races(df["Race"].to_numpy(), races, path) if "Race" in df else None, "split_hint": None})
    return pd.concat([out, _labels(df, path)], axis=1), path, {}


# ---------------------------------------------------------------- split files and the public API

def _apply_split_files(df: pd.DataFrame, split_files: dict) -> tuple[pd.DataFrame, dict]:
    """Keep only images listed in a split file, hinted with that file's split."""
    odd = sorted(set(split_files) - set(SPLITS))
    if odd:
        raise CxrError(f"split_files has key {odd[0]!r}; allowed: {', '.join(SPLITS)}")
    where, origin = {}, {}
    for name, path in split_files.items():
        if not path:
            continue
        listed = _read_table(path, "give a CSV with a Path column (Study B's cxp_tr / cxp_ts / mimic_ts form)",
                             ("Path",))
        for k in map(_key, listed["Path"]):
            if where.setdefault(k, name) != name:
                raise CxrError(f"{path}: {k} is also listed in {origin[k]}; an image belongs to one split file only")
            origin[k] = path
    if not where:
        return df, {}
    hint = df["key"].map(where)
    keep = hint.notna().to_numpy()
    unmatched = len(where) - int(keep.sum())
    log.info("split files: %d images kept, %d listed in no split file dropped, %d listed entries match no image "
             "(views filter or absent from the labels)", keep.sum(), (~keep).sum(), unmatched)
    df = df[keep].assign(split_hint=hint[keep])
    return df, {"n_dropped_unlisted": int((~keep).sum()), "n_split_entries_unmatched": unmatched}


def check_site(site: dict, key: str = "site") -> Path:
    """The site's root, after the checks that need no table read: cheap enough to run while Snakemake
    builds the DAG, so a missing or wrong download stops the run before any job. ``key`` is the site's
    config path (``chexpert.sites.mimic``) for the messages."""
    fmt = site.get("format")
    if fmt not in FORMATS:
        raise CxrError(f"config key '{key}.format' must be one of {list(FORMATS)}, got {fmt!r}")
    if site.get("views", "frontal") not in VIEWS:
        raise CxrError(f"config key '{key}.views' must be one of {list(VIEWS)}, got {site.get('views')!r}")
    root = site.get("root")
    if root is None or str(root).strip() == "":
        raise CxrError(f"config key '{key}.root' is not set (credentialed data is never downloaded); "
                       f"{SETUP_HINTS[fmt]}")
    root = Path(str(root)).expanduser()
    if not root.is_dir():
        what = "is a file, not a folder" if root.exists() else "does not exist"
        raise CxrError(f"config key '{key}.root' = '{root}' {what}; {SETUP_HINTS[fmt]}")
    if fmt == "chexpert":
        _chexpert_base(root, key)
    elif fmt == "mimic":
        for name in MIMIC_TABLES:
            _mimic_table(root, name, key)
        if not (root / "files").is_dir():
            raise CxrError(f"config key '{key}.root' = '{root}': expected the images under files/, found "
                           f"{describe(root)}; {SETUP_HINTS['mimic']}")
    elif not site.get("csv"):
        raise CxrError(f"config key '{key}.csv' is not set; give the label CSV (Path column + finding columns)")
    elif not Path(site["csv"]).is_file():
        raise CxrError(f"config key '{key}.csv' = '{site['csv']}' does not exist; give the label CSV "
                       "(Path column + finding columns)")
    return root


def read_site(site: dict, key: str = "site") -> pd.DataFrame:
    """One image per row: path, subject, age, sex, race, split_hint and the 14 FINDINGS (raw floats), by path.

    ``frame.attrs`` records the format, root and what was dropped (for provenance)."""
    root = check_site(site, key)
    fmt, views = site["format"], site.get("views") or "frontal"
    reader = {"chexpert": _read_chexpert, "mimic": _read_mimic, "csv": _read_csv}[fmt]
    df, source, attrs = reader(site, root, views, _race_lookup(site.get("race_map")), key)
    dup = df["key"].duplicated()
    if dup.any():
        raise CxrError(f"{source}: image {df['key'][dup].iloc[0]} is listed twice; keep one row per image")
    df, dropped = _apply_split_files(df, site.get("split_files") or {})
    if not len(df):
        raise CxrError(f"{fmt} site at '{root}': no image left after views={views!r} and the split files; "
                       "check that the split files list this site's paths")
    exists = np.fromiter((os.path.isfile(p) for p in df["path"]), bool, len(df))
    if not exists.all():
        raise CxrError(f"{df['path'][~exists].iloc[0]}: image listed in {source} is missing "
                       f"({int((~exists).sum())} of {len(df)} missing); {SETUP_HINTS[fmt]}")
    obj = lambda col: pd.Series([None if pd.isna(v) else v for v in col], dtype=object)  # noqa: E731
    frame = pd.DataFrame({
        "path": obj(df["path"]), "subject": obj(df["subject"]), "age": df["age"].to_numpy(float),
        "sex": obj(SEX_ALIASES.get(str(v).strip().casefold()) for v in df["sex"]), "race": obj(df["race"]),
        "split_hint": obj(df["split_hint"]), **{f: df[f].to_numpy(float) for f in FINDINGS}})
    frame = frame.sort_values("path", kind="stable").reset_index(drop=True)
    frame.attrs = {"format": fmt, "root": str(root), "views": views, **attrs, **dropped}
    return frame


def _take(fraction: float, n: int) -> int:
    """How many of n patients a fraction picks: at least one when it is > 0, never all of them."""
    return 0 if fraction <= 0 or n < 2 else min(n - 1, max(1, round(fraction * n)))


def assign_splits(frame: pd.DataFrame, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """Patient-disjoint split codes (imageset.SPLITS): hints kept, val carved from hinted train patients
    when no val is hinted, unhinted patients split at random by the fractions."""
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise CxrError(f"val_fraction and test_fraction must lie in [0, 1) with a sum < 1, "
                       f"got {val_fraction} and {test_fraction}")
    subjects = frame["subject"].astype(str).to_numpy()
    hinted: dict[str, str] = {}
    for s, h in zip(subjects, frame["split_hint"]):
        if h is not None and not pd.isna(h) and hinted.setdefault(s, h) != h:
            raise CxrError(f"patient {s} has images hinted both {hinted[s]!r} and {h!r}; "
                           "a patient must sit in one split (fix the split files)")
    rng = np.random.default_rng(seed)
    free = sorted(set(subjects) - set(hinted))
    n_test = _take(test_fraction, len(free))
    n_val = max(0, min(_take(val_fraction, len(free)), len(free) - n_test - 1))
    names = ["test"] * n_test + ["val"] * n_val + ["train"] * (len(free) - n_test - n_val)
    where = {free[i]: names[k] for k, i in enumerate(rng.permutation(len(free)))}
    where.update(hinted)
    if val_fraction > 0 and "val" not in hinted.values():
        train = sorted(s for s, h in hinted.items() if h == "train")
        where.update({train[i]: "val" for i in rng.permutation(len(train))[:_take(val_fraction, len(train))]})
    return np.fromiter((SPLITS[where[s]] for s in subjects), np.uint8, len(subjects))


def label_matrix(frame: pd.DataFrame) -> np.ndarray:
    """(N, 14) float32 raw labels (1, 0, -1, NaN) in FINDINGS order."""
    return frame[FINDINGS].to_numpy(np.float32)


def condition_vectors(frame: pd.DataFrame, uncertain: float) -> np.ndarray:
    """(N, 22) float32 in COND_NAMES order, as Study B builds ``cls``: age // 10, one-hot sex and race
    (unknown: all zeros), findings 1 -> 1, 0 / blank -> 0, -1 -> ``uncertain``. An unknown age is NaN, not
    decade 0 (a child): the generator's projection gives a NaN entry its own learned value."""
    out = np.zeros((len(frame), len(COND_NAMES)), np.float32)
    age = frame["age"].to_numpy(float)
    out[:, 0] = age // 10
    out[:, 1:3] = np.stack([(frame["sex"] == s).to_numpy() for s in SEXES], 1)
    out[:, 3:8] = np.stack([(frame["race"] == r).to_numpy() for r in RACES], 1)
    labels = label_matrix(frame)
    out[:, 8:] = np.where(labels == 1, 1.0, np.where(labels == -1, uncertain, 0.0))
    return out


def training_targets(labels: np.ndarray, policy: str) -> np.ndarray:
    """Classifier targets: blank -> 0 (not mentioned = negative, the CheXpert convention); -1 -> NaN (masked
    out of the loss, "ignore"), 0 ("zeros") or 1 ("ones")."""
    if policy not in UNCERTAIN_POLICIES:
        raise CxrError(f"config key 'classifier.uncertain' must be one of {list(UNCERTAIN_POLICIES)}, got {policy!r}")
    y = np.nan_to_num(np.asarray(labels, np.float32), nan=0.0)
    y[y == -1] = UNCERTAIN_POLICIES[policy]
    return y


def load_image(path, size: int) -> np.ndarray:
    """(size, size) uint8 grey image as Study B feeds it: longest side -> size (bilinear), centred, 0-padded.
    8-bit grey levels are kept; 16-bit / float images are min-max scaled to 0..255 unless already within it."""
    from PIL import Image

    try:
        with Image.open(path) as img:
            img.load()  # decode now, so a truncated file fails here, naming the file
            a = np.asarray(img if img.mode in ("L", "I", "I;16", "I;16B", "I;16L", "F") else img.convert("L"))
    except (OSError, ValueError) as e:  # PIL.UnidentifiedImageError is an OSError
        raise CxrError(f"{path}: unreadable image ({type(e).__name__}: {e}); download it again "
                       "or drop it from the site") from e
    return to_square_uint8(a, int(size))
