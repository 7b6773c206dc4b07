// The upload page (static/import.html): files to POST /api/v1/imports with an operator's token,
// then the import's progress and report from GET /api/v1/imports/{id}, polled until it is done.
// The token stays in this tab only (sessionStorage).

const STRINGS = {
  id: {
    title: "Unggah riwayat harga", back: "Kembali ke dasbor", token: "Token operator", files: "Berkas",
    intro: "Berkas CSV, XLSX atau NDJSON: CSV tick, ekspor PIHPS (panjang atau \"Tabel Harga\"), tabel bulanan provinsi. Harga diperiksa seperti tick biasa dan dimasukkan berurutan waktu; mengunggah berkas yang sama dua kali tidak menambah apa pun.",
    wide: "Ekspor \"Tabel Harga\" PIHPS: sisi yang tidak disebut berkasnya",
    commodity: "Komoditas (bila baris = daerah)", market: "Pasar (bila baris = komoditas)", province: "Provinsi",
    submit: "Unggah", job: "Impor {id}", queued: "menunggu", reading: "membaca", appending: "memasukkan",
    done: "selesai", failed: "gagal", interrupted: "terputus",
    progress: "{phase}: {percent} · {done} {unit} · {rate}/dtk · sisa {left}",
    waiting: " · menunggu mesin", rows: "baris dibaca", accepted: "diterima", duplicates: "sudah ada",
    refused: "ditolak", series: "seri", period: "periode", reason: "alasan", count: "jumlah", first: "contoh pertama",
    error: "Galat: {detail}",
  },
  en: {
    title: "Upload price history", back: "Back to the dashboard", token: "Operator token", files: "Files",
    intro: "CSV, XLSX or NDJSON files: tick CSV, PIHPS exports (long or \"Tabel Harga\"), the monthly provincial table. Prices are checked like any tick and added in time order; uploading the same file twice adds nothing.",
    wide: "PIHPS \"Tabel Harga\" export: the side the file does not name",
    commodity: "Commodity (when rows are regions)", market: "Market (when rows are commodities)", province: "Province",
    submit: "Upload", job: "Import {id}", queued: "queued", reading: "reading", appending: "adding",
    done: "done", failed: "failed", interrupted: "interrupted",
    progress: "{phase}: {percent} · {done} {unit} · {rate}/s · {left} left",
    waiting: " · waiting for the engine", rows: "rows read", accepted: "accepted", duplicates: "already there",
    refused: "refused", series: "series", period: "period", reason: "reason", count: "count", first: "first examples",
    error: "Error: {detail}",
  },
};
const lang = localStorage.getItem("pasarwatch.lang") === "en" ? "en" : "id";
const t = (key, vars = {}) => STRINGS[lang][key].replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
const $ = (id) => document.getElementById(id);
const number = new Intl.NumberFormat(lang === "en" ? "en-GB" : "id-ID");
const POLL_MS = 500;

document.documentElement.lang = lang;
document.title = `Pasarwatch — ${t("title")}`;
for (const el of document.querySelectorAll("[data-text]")) el.textContent = t(el.dataset.text);
$("token").value = sessionStorage.getItem("pasarwatch.token") || "";

function cell(tag, text) {
  const el = document.createElement(tag);
  el.textContent = text;
  return el;
}

function showProgress(job) {
  $("job-title").textContent = `${t("job", { id: job.id })} — ${t(job.state) || job.state}`;
  $("job").dataset.state = job.state;
  const p = job.progress;
  if (p) {
    $("bar").value = job.state === "done" ? 1 : p.fraction;
    const left = p.seconds_left == null ? "–" : `${Math.ceil(p.seconds_left)} s`;
    $("progress").textContent = t("progress", {
      phase: t(p.phase) || p.phase, percent: `${Math.round(100 * p.fraction)}%`, done: number.format(p.done),
      unit: p.unit, rate: number.format(Math.round(p.rate)), left,
    }) + (p.waiting_for_engine ? t("waiting") : "");
  }
  if (job.error) $("progress").textContent = t("error", { detail: job.error });
}

function showReport(report) {
  const root = $("report");
  root.replaceChildren();
  const facts = document.createElement("dl");
  for (const [key, value] of [["rows", report.rows], ["accepted", report.accepted], ["duplicates", report.duplicates],
    ["refused", report.refused], ["series", report.series], ["period", `${report.from || "–"} – ${report.to || "–"}`]]) {
    facts.append(cell("dt", t(key)), cell("dd", typeof value === "number" ? number.format(value) : value));
  }
  root.append(facts);
  const reasons = Object.entries(report.refused_by_reason || {});
  if (!reasons.length) return;
  const table = document.createElement("table");
  table.dataset.testid = "import-refused";
  table.insertRow().append(cell("th", t("reason")), cell("th", t("count")), cell("th", t("first")));
  for (const [reason, entry] of reasons) {
    const row = table.insertRow();
    row.append(cell("td", reason), cell("td", number.format(entry.count)),
      cell("td", entry.first.map((f) => `${f.where}: ${f.detail}`).join("\n")));
  }
  root.append(table);
}

async function poll(url, token) {
  for (;;) {
    const response = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    const job = await response.json();
    if (!response.ok) throw new Error(job.errors?.[0]?.detail || `HTTP ${response.status}`);
    showProgress(job);
    if (job.report && ["done", "failed", "interrupted"].includes(job.state)) showReport(job.report);
    if (["done", "failed", "interrupted"].includes(job.state)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS)); // the next poll, not a wait for an event
  }
}

$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("token").value.trim();
  sessionStorage.setItem("pasarwatch.token", token);
  const body = new FormData();
  for (const file of $("files").files) body.append("file", file);
  for (const name of ["commodity", "market", "province"]) if ($(name).value.trim()) body.append(name, $(name).value.trim());
  $("job").hidden = false;
  $("report").replaceChildren();
  $("bar").value = 0;
  try {
    const response = await fetch("/api/v1/imports", { method: "POST", body, headers: { authorization: `Bearer ${token}` } });
    const answer = await response.json();
    if (response.status !== 202) throw new Error(answer.errors?.[0]?.detail || `HTTP ${response.status}`);
    await poll(answer.url, token);
  } catch (error) {
    $("job").dataset.state = "failed";
    $("progress").textContent = t("error", { detail: error.message });
  }
});
