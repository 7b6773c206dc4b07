"""Backfill from files: ``python -m server.imports`` (``pasarwatch import``) and POST /api/v1/imports
against a real Redis, engine and web process."""
from __future__ import annotations

import csv
import heapq
import subprocess
import sys
import time
from pathlib import Path

import httpx
import orjson
import pytest

from base.catalog import load_catalog
from server import auth
from base.config import PROJECT_ROOT
from tests import partitions
from tests.system import System, wait_for

FIXTURES = Path(__file__).parent / "fixtures" / "imports"
JABAR = FIXTURES / "pihps-jabar-cabai-2024-01.csv"
MONTHLY = FIXTURES / "provinsi-bulanan-2-rows.csv"
DATES = ["01/ 04/ 2024", "02/ 04/ 2024", "03/ 04/ 2024"]


@pytest.fixture(scope="module")
def system(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("imports")
    running = System(tmp, env={"PASARWATCH_MAX_IMPORT_BYTES": "200000"}).start()
    yield running
    running.stop()


def run_import(system: System, *args: str, env: dict | None = None) -> tuple[int, dict | None, str]:
    """Exit code, the JSON report (when there is one) and stderr of the command."""
    result = subprocess.run([sys.executable, "-m", "server.imports", *map(str, args), "--json"],
                            env={**system.env, **(env or {})}, cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120)
    report = orjson.loads(result.stdout) if result.stdout.strip().startswith("{") else None
    return result.returncode, report, result.stderr


def history(system: System, commodity: str, market: str) -> list[dict]:
    response = system.http.get(f"/api/v1/series/{commodity}/{market}/history", params={"limit": 5000})
    return response.json()["points"]


def wait_history(system: System, commodity: str, market: str, count: int) -> list[dict]:
    return wait_for(lambda: (points := history(system, commodity, market)) and len(points) >= count and points,
                    20, f"{count} points of {commodity}/{market}")


def jabar_rows() -> list[dict]:
    with JABAR.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_pihps_long_csv_lands_every_price_once(system, tmp_path):
    rows = jabar_rows()
    code, report, stderr = run_import(system, JABAR)
    assert code == 0, stderr
    assert report["rows"] == report["values"] == report["accepted"] == len(rows) == 200
    assert report["refused"] == 0 and report["duplicates"] == 0 and report["empty"] == 0
    assert report["series"] == 18 and "cabai-rawit-merah/pasar-agung" in report["series_first"]
    assert report["files"] == [{"file": JABAR.name, "layout": "ticks", "rows": 200}]
    assert report["from"].startswith("2024-01-01") and report["to"].startswith("2024-01-16")
    assert "ticks/s" in stderr  # the progress line
    agung = [row for row in rows if row["market"] == "Pasar Agung"]
    points = wait_history(system, "cabai-rawit-merah", "pasar-agung", len(agung))
    assert [p["price"] for p in points] == [float(row["price"]) for row in agung]
    assert all(p["province"] == "32" and p["source"] == "import:cabai-rawit-merah@pasar-agung" for p in points)

    # Again (its directory: the files in it): nothing added, each price a duplicate; the audit
    # chain holds both processes' appends.
    folder = tmp_path / "exports"
    (folder / "jabar").mkdir(parents=True)
    (folder / "jabar" / JABAR.name).write_bytes(JABAR.read_bytes())
    (folder / "notes.txt").write_text("not an import file")
    code, again, stderr = run_import(system, folder)
    assert code == 0, stderr
    assert [f["file"] for f in again["files"]] == [JABAR.name]
    assert again["accepted"] == 0 and again["duplicates"] == 200 and again["duplicates_first"][0] == f"{JABAR.name}:2"
    system.wait_processed(200)
    assert len(history(system, "cabai-rawit-merah", "pasar-agung")) == len(agung)
    assert system.http.get("/api/v1/audit/verify").json()["intact"] is True


def test_refused_rows_are_reported_by_reason_with_file_and_line(system, tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text(
        "date,commodity,market,province,price\n"
        "2024-03-01,bawang-merah,pasar-uji-satu,32,38000\n"        # line 2: good
        "2024-03-01,cabe,pasar-uji-satu,32,38000\n"                 # 3: unknown commodity
        "2024-03-02,bawang-merah,pasar-uji-satu,32,abc\n"          # 4: not a number
        "kemarin,bawang-merah,pasar-uji-satu,32,38000\n"            # 5: not a day
        "2024-03-03,bawang-merah,pasar-uji-satu,99,38000\n"         # 6: unknown province
        "2010-03-03,bawang-merah,pasar-uji-satu,32,38000\n"         # 7: older than ten years
        "2024-03-04,bawang-merah,pasar-uji-satu,32,-\n"             # 8: not reported: skipped
        "2024-03-05,bawang-merah,pasar-uji-satu,32,\"39,000\"\n"    # 9: good (thousands comma)
        "2024-03-05,cabai,pasar-uji-satu,32,-5\n")                  # 10: unknown commodity again
    code, report, stderr = run_import(system, path)
    assert code == 1, stderr
    assert (report["rows"], report["accepted"], report["refused"], report["empty"]) == (9, 2, 6, 1)
    reasons = report["refused_by_reason"]
    assert {reason: entry["count"] for reason, entry in reasons.items()} == {
        "unknown_commodity": 2, "not_a_number": 1, "bad_date": 1, "unknown_province": 1, "too_old": 1}
    assert [s["where"] for s in reasons["unknown_commodity"]["first"]] == ["mixed.csv:3", "mixed.csv:10"]
    assert reasons["not_a_number"]["first"][0]["where"] == "mixed.csv:4"
    assert reasons["too_old"]["first"][0] == {"where": "mixed.csv:7", "column": None, "field": "ts",
                                              "detail": reasons["too_old"]["first"][0]["detail"]}
    assert "older than the history" in reasons["too_old"]["first"][0]["detail"]
    points = wait_history(system, "bawang-merah", "pasar-uji-satu", 2)
    assert [p["price"] for p in points] == [38000.0, 39000.0]


def pihps_table(dates: list[str], rows: list[list]) -> list[list]:
    return [["No", "Komoditas (Rp)", *dates], *rows]


def test_pihps_wide_csv_rows_are_commodities_of_one_market(system, tmp_path):
    table = pihps_table(DATES, [
        ["I", "Beras", "14,250", "14,300", "14,300"],            # a PIHPS group we do not price
        ["II", "Bawang Merah", "40,000", "41,000", "-"],
        ["III", "Cabai Rawit", "65,000", "66,000", "-"],         # the group: red and green chilli's average
        ["1", "Cabai Rawit Merah", "70,000", "72,500", "71,000"],  # its item: this price wins where given
        ["2", "Cabai Rawit Hijau", "60,000", "59,500", "-"],
        ["IV", "Daging Ayam", "35,000", "36,000", "37,000"],
        ["3", "Daging Ayam Ras Segar", "35,500", "-", "37,500"],  # the same series as its group
    ])
    path = tmp_path / "Tabel Harga Berdasarkan Daerah.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(table)
    code, report, stderr = run_import(system, path, "--market", "pasar-uji-dua", "--province", "Jawa Barat")
    assert code == 1, stderr
    assert report["files"][0]["layout"] == "pihps"
    assert (report["rows"], report["values"], report["empty"]) == (7, 17, 4)
    # Shallots, red and green chilli (whichever series the chilli group names, it yields), chicken.
    assert report["accepted"] == 2 + 3 + 2 + 3
    first = report["refused_by_reason"]["unknown_commodity"]["first"][0]
    assert first["where"] == f"{path.name}:2" and first["column"] == DATES[0]
    points = wait_history(system, "cabai-rawit-merah", "pasar-uji-dua", 3)
    assert [(p["price"], p["province"]) for p in points] == [(70000.0, "32"), (72500.0, "32"), (71000.0, "32")]
    assert [time.strftime("%Y-%m-%d %H:%M", time.gmtime(p["ts"])) for p in points] == [
        "2024-04-01 03:00", "2024-04-02 03:00", "2024-04-03 03:00"]  # 10:00 WIB
    assert [p["price"] for p in wait_history(system, "bawang-merah", "pasar-uji-dua", 2)] == [40000.0, 41000.0]
    # The item's own price where it has one, the group's where it has none.
    assert [p["price"] for p in wait_history(system, "daging-ayam-ras", "pasar-uji-dua", 3)] == [35500.0, 36000.0, 37500.0]


def test_pihps_wide_xlsx_rows_are_regions_of_one_commodity(system, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Sheet"
    for row in pihps_table(DATES, [["1", "Jawa Tengah", "55,500", "-", "56,250"],
                                   ["2", "Bali", 61000, "61,250", "61,500"]]):
        sheet.append(row)
    path = tmp_path / "Tabel Harga Berdasarkan Komoditas.xlsx"
    book.save(path)
    code, report, stderr = run_import(system, path, "--commodity", "Bawang Putih")
    assert code == 0, stderr
    assert (report["values"], report["empty"], report["accepted"], report["series"]) == (5, 1, 5, 2)
    points = wait_history(system, "bawang-putih", "rata-rata-jawa-tengah", 2)
    assert [(p["price"], p["province"]) for p in points] == [(55500.0, "33"), (56250.0, "33")]
    assert [p["price"] for p in wait_history(system, "bawang-putih", "rata-rata-bali", 3)] == [61000.0, 61250.0, 61500.0]

    # Without the commodity the table does not say what it prices: nothing is appended.
    code, report, stderr = run_import(system, path)
    assert code == 2 and report is None and "--commodity" in stderr


def test_monthly_table_and_ndjson(system, tmp_path):
    with MONTHLY.open(newline="") as handle:
        rows = list(csv.reader(handle))
    code, report, stderr = run_import(system, MONTHLY)
    assert code == 0, stderr
    assert report["files"][0]["layout"] == "monthly"
    aceh = [float(value) for value in rows[1][2:] if value]
    assert report["accepted"] == len(aceh) + len([v for v in rows[2][2:] if v])
    points = wait_history(system, "bawang-merah", "rata-rata-aceh", len(aceh))
    assert [p["price"] for p in points] == aceh and points[0]["province"] == "11"
    assert time.gmtime(points[0]["ts"])[:3] == (2018, 1, 15)

    path = tmp_path / "ticks.ndjson"
    path.write_bytes(b'{"commodity": "gula-pasir", "market": "pasar-uji-tiga", "province": "32", '
                     b'"price": 17500, "ts": "2024-05-01T08:00:00+07:00"}\n'
                     b'\n'
                     b'{"commodity": "gula-pasir", "market": "pasar-uji-tiga", "province": "32", '
                     b'"price": 17600, "date": "2024-05-02"}\n'
                     b'{not json\n'
                     b'{"commodity": "gula-pasir", "market": "pasar-uji-tiga", "province": "32", "price": 1, "colour": "red"}\n')
    code, report, stderr = run_import(system, path)
    assert code == 1, stderr
    assert (report["rows"], report["accepted"]) == (4, 2)
    assert {r: e["first"][0]["where"] for r, e in report["refused_by_reason"].items()} == {
        "invalid_json": "ticks.ndjson:4", "unknown_field": "ticks.ndjson:5"}
    assert [p["price"] for p in wait_history(system, "gula-pasir", "pasar-uji-tiga", 2)] == [17500.0, 17600.0]


def test_the_command_says_when_it_cannot_run(system, tmp_path):
    unknown = tmp_path / "notes.csv"
    unknown.write_text("name,colour\nbawang,red\n")
    accepted = partitions.total(system.redis, "accepted")
    for args, env, says in [
        ((tmp_path / "missing.csv",), None, "missing.csv"),
        ((unknown,), None, "no header row"),
        ((JABAR,), {"REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis"),
    ]:
        code, report, stderr = run_import(system, *args, env=env)
        assert code == 2 and report is None and says in stderr, stderr
    assert partitions.total(system.redis, "accepted") == accepted


def test_a_too_old_tick_gets_422_too_old(system):
    response = system.post({"commodity": "bawang-merah", "market": "pasar-kosambi", "province": "32",
                            "price": 38000, "ts": "2001-04-01T08:00:00+07:00"})
    assert response.status_code == 422, response.text
    error = response.json()["errors"][0]
    assert (error["field"], error["reason"]) == ("ts", "too_old")
    assert "PASARWATCH_MAX_TICK_AGE_DAYS" in error["detail"]


def test_upload_over_http_for_operators(system, tmp_path):
    operator = auth.issue(system.redis, "person", "ani", "operator")
    viewer = auth.issue(system.redis, "person", "budi", "viewer")
    table = pihps_table(DATES, [["1", "Minyakita", "15,700", "15,750", "15,800"]])
    body = "\n".join(",".join(f'"{cell}"' for cell in row) for row in table).encode()
    files = {"file": ("harga.csv", body, "text/csv")}
    form = {"market": "pasar-uji-empat", "province": "32"}
    url = f"{system.url}/api/v1/imports"
    assert httpx.post(url, files=files, data=form).status_code == 401
    assert httpx.post(url, files=files, data=form, headers={"authorization": f"Bearer {viewer}"}).status_code == 403
    as_operator = httpx.Client(base_url=system.url, headers={"authorization": f"Bearer {operator}"}, timeout=10)
    response = as_operator.post("/api/v1/imports", files=files, data=form)
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["state"] == "queued" and job["url"] == f"/api/v1/imports/{job['id']}"
    assert httpx.get(f"{system.url}{job['url']}").status_code == 401
    done = wait_for(lambda: (j := as_operator.get(job["url"]).json())["state"] in ("done", "failed") and j,
                    20, "the import to finish")
    assert done["state"] == "done" and done["by"] == "ani" and done["files"] == ["harga.csv"], done
    assert (done["report"]["accepted"], done["report"]["refused"]) == (3, 0)
    assert done["progress"]["phase"] == "done" and done["progress"]["fraction"] == 1.0
    assert [p["price"] for p in wait_history(system, "minyakita", "pasar-uji-empat", 3)] == [15700.0, 15750.0, 15800.0]

    # Too large (PASARWATCH_MAX_IMPORT_BYTES is 200000 here), not multipart, no file, unknown id.
    big = {"file": ("big.csv", b"x" * 200_001, "text/csv")}
    assert as_operator.post("/api/v1/imports", files=big).json()["errors"][0]["reason"] == "upload_too_large"
    assert as_operator.post("/api/v1/imports", content=b"{}", headers={"content-type": "application/json"}).status_code == 415
    assert as_operator.post("/api/v1/imports", data=form, files={"other": ("x", b"1")}).json()["errors"][0]["field"] == "file"
    assert as_operator.get("/api/v1/imports/0123456789abcdef").status_code == 404
    as_operator.close()


def test_importing_into_an_empty_system_warms_the_detectors(tmp_path):
    system = System(tmp_path).start()
    try:
        code, report, stderr = run_import(system, JABAR)
        assert code == 0 and report["accepted"] == 200, stderr
        system.wait_processed(200)
        assert system.redis.hexists(partitions.of(system.redis, "cabai-rawit-merah").state_series,
                                     "cabai-rawit-merah/pasar-agung")
        # The next live price at Pasar Agung, five times its usual: judged against the imported history.
        response = system.post({"commodity": "cabai-rawit-merah", "market": "pasar-agung", "province": "32",
                                "price": 375000, "ts": "2024-01-17T10:00:00+07:00"})
        assert response.status_code == 202, response.text
        system.wait_processed(201)
        verdict = history(system, "cabai-rawit-merah", "pasar-agung")[-1]["verdict"]
        assert {"zscore", "iqr", "crossmarket"} <= set(verdict["fired"]), verdict
        assert verdict.get("late") is not True
    finally:
        system.stop()


def test_a_large_import_is_sorted_through_runs_on_disk(tmp_path, monkeypatch):
    """Bounded memory: past RUN ticks, sorted runs go to files and are merged back in time order."""
    from server import import_runner
    from server.import_files import Source
    from server.import_runner import Importer, Progress

    monkeypatch.setattr(import_runner, "RUN", 40)
    newest_first = tmp_path / "newest-first.csv"
    with newest_first.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["date", "commodity", "market", "province", "price"])
        for day in range(60, 0, -1):
            writer.writerow([f"2024-{1 + day // 28:02d}-{1 + day % 28:02d}", "bawang-merah", "pasar-a", "32", 30000 + day])
    sources = [Source(newest_first), Source(JABAR)]
    importer = Importer(None, None, load_catalog())
    importer.progress = Progress(sources)
    runs = importer.read(sources, tmp_path)
    assert len(runs.files) == 6 and len(runs.memory[0]) < 40
    merged = [(ts, commodity, market) for ts, commodity, market, *_ in heapq.merge(*runs.iterators())]
    runs.close()
    assert len(merged) == 260 and merged == sorted(merged)
    assert merged[0][1] == "cabai-rawit-merah" and merged[-1][1] == "bawang-merah"  # January 1st, March 5th


@pytest.mark.timeout(180)
def test_after_importing_three_years_the_seasonal_ladder_fires_on_the_next_live_spike_and_history_tells_nobody(tmp_path):
    """ALPS needs a year and more of history: imported, it is warm on day one. The alerts the
    history itself raised are recorded, and told to nobody."""
    history = PROJECT_ROOT / "tests" / "fixtures" / "pihps-cabai-5-markets-2020-2022.csv"
    system = System(tmp_path).start()
    try:
        code, report, stderr = run_import(system, history)
        assert code == 0, stderr
        system.wait_processed(report["accepted"], timeout=90)
        past = partitions.alert_events(system.redis)
        assert past and all(e["notify"] is False and e.get("backfill") for e in past)
        latest_ts = partitions.of(system.redis, "cabai-rawit-merah").latest_ts
        last = max(float(system.redis.hget(latest_ts, f"cabai-rawit-merah/{m}") or 0) for m in
                   ("pasar-agung", "pasar-cisalak", "pasar-kranji"))
        latest = {m["market"]: m for m in system.http.get("/api/v1/series", params={
            "commodity": "cabai-rawit-merah"}).json()["series"]}
        sent = report["accepted"]
        for day in range(1, 4):  # a surge of 60%, three live days
            ticks = [{"commodity": "cabai-rawit-merah", "market": market, "province": "32",
                      "price": round(m["price"] * 1.6), "ts": last + day * 86400.0} for market, m in latest.items()]
            assert system.post(ticks).status_code == 202
            sent += len(ticks)
            system.wait_processed(sent)
        live = partitions.alert_events(system.redis)[len(past):]
        seasonal = [e for e in live if e["rule"] == "lonjakan-musiman" and e["transition"] == "fired"]
        assert seasonal and all(e["notify"] and not e.get("backfill") for e in seasonal)
    finally:
        system.stop()
