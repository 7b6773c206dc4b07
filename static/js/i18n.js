// Every string the page shows, in Bahasa Indonesia (default) and English, and the number and
// time formats that go with them. Prices always use id-ID grouping ("Rp 52.000") because that is
// how rupiah amounts are read, whichever language the labels are in.

export const STRINGS = {
  id: {
    "page.title": "Pasarwatch — Pantauan Harga Pangan",
    "brand.tagline": "Pantauan harga pangan",
    "lang.toggle": "English",
    "lang.toggle.title": "Switch to English",
    "control.commodity": "Komoditas",
    "control.province": "Provinsi",
    "control.market": "Pasar",
    "control.allProvinces": "Semua provinsi",
    "control.noMarket": "— pilih pasar —",
    "conn.connecting": "Menyambung…",
    "conn.open": "Langsung",
    "conn.closed": "Terputus",
    "conn.retry": "Terputus — coba lagi {seconds} dtk",
    "conn.rate": "{rate} pembaruan/dtk",
    "import.link": "Unggah riwayat",
    "demo.running": "Demo: memutar ulang harga PIHPS Jawa Barat {from} – {to}",
    "demo.finished": "Demo selesai: harga PIHPS {from} – {to} sudah diputar semua; riwayat dan peringatan tetap bisa dilihat",
    "demo.failed": "Demo berhenti karena galat; riwayat sejauh ini tetap bisa dilihat",
    "control.reference": "Acuan",
    "reference.avg3m": "rata-rata 3 bulan",
    "reference.year": "setahun lalu (selaras Lebaran)",
    "reference.ceiling": "HAP/HET",
    "reference.ceiling.HAP": "HAP",
    "reference.ceiling.HET": "HET",
    "reference.against": "vs {name} {level}",
    "reference.unknown.avg3m": "Rata-rata 3 bulan belum ada: perlu harga 20 hari dalam 91 hari terakhir",
    "reference.unknown.year": "Tidak ada harga setahun lalu pada titik musim yang sama",
    "reference.unknown.ceiling": "Komoditas ini tidak punya HAP/HET",
    "map.subtitle.reference": "Harga terakhir (median provinsi) dibanding {name}",
    "chart.legend.adaptive": "Tingkat adaptif detektor",
    "chart.legend.forecast": "Prakiraan (interval 95%)",
    "odds.title": "Peluang dalam {days} hari laporan",
    "odds.above": "Melewati {kind} {level}",
    "odds.rise": "Naik 10% atau lebih",
    "odds.notYet": "belum cukup riwayat",
    "odds.notYetShort": "riwayat kurang",
    "odds.caveat": "Dikalibrasi pada laporan harian; seri ini tidak dilaporkan tiap hari, jadi peluangnya kurang andal.",
    "odds.forecast": "Prakiraan (interval 80%)",
    "odds.horizon": "Hari ke depan",
    "odds.point": "Prakiraan",
    "odds.interval": "Interval 80%",
    "odds.source": "Dasar",
    "odds.source.model": "model",
    "odds.source.last": "harga terakhir",
    "odds.lastNote": "harga terakhir: tidak ada model yang mengalahkan harga terakhir pada jangka ini, jadi ini harga terakhir dengan intervalnya.",
    "chart.legend.odd": "Rentang detektor: apakah harga ini janggal?",
    "chart.legend.reference": "Acuan: {name}",
    "chart.legend.change": "Detektor yang menyala berganti",
    "chart.legend.resolved": "Peringatan selesai",
    "tip.band": "Rentang detektor {lo} – {hi} (tingkat {level})",
    "tip.resolved": "Peringatan selesai",
    "tip.change": "Detektor yang menyala berganti",
    "feed.against": "{deviation} vs {name} {level}",
    "summary.title": "Ringkasan",
    "summary.alerts": "Dalam peringatan",
    "summary.alerts.none": "Tidak ada peringatan aktif.",
    "summary.alerts.count": "{count} peringatan",
    "summary.movers": "Pergerakan terbesar (minggu ke minggu)",
    "summary.movers.none": "Belum ada harga seminggu lalu.",
    "summary.alps": "Fase ALPS",
    "summary.alps.none": "Belum ada: ALPS perlu riwayat setahun",
    "summary.national": "Nasional",
    "summary.crisis": "Kriteria krisis (draf Badan Pangan)",
    "summary.crisis.rule": "{low} – {high} di atas acuan (HAP/HET atau rata-rata 3 bulan) selama {days} hari",
    "summary.crisis.met": "terpenuhi: {threshold} di atas {name} selama {days} hari (sejak {since})",
    "summary.crisis.watch": "dipantau: {threshold} di atas {name} baru {days} hari",
    "summary.crisis.no": "tidak terpenuhi",
    "summary.freshness": "Kesegaran data",
    "summary.freshness.entry": "terbaru {time} ({age} lalu), {count} pasar",
    "summary.loading": "Memuat…",
    "phase.normal": "normal",
    "phase.stress": "tekanan",
    "phase.alert": "lonjakan",
    "phase.crisis": "krisis",
    "map.title": "Peta harga",
    "map.noData": "tidak ada data",
    "map.tooltip.markets": "{count} pasar",
    "map.tooltip.alerts": "{count} peringatan aktif",
    "map.credit": "Batas provinsi: Indonesia GeoJSON & TopoJSON Maps (38 Provinces), CC BY 4.0",
    "chart.title": "Grafik harga",
    "chart.choose": "Pilih pasar untuk melihat grafik harganya.",
    "chart.empty": "Belum ada harga untuk seri ini.",
    "chart.points": "{count} titik",
    "chart.legend.price": "Harga",
    "chart.legend.quarantined": "Dikarantina",
    "chart.legend.alert": "Memicu peringatan",
    "tip.fired": "Detektor yang menyala:",
    "tip.quarantined": "Dikarantina: tidak dipelajari model",
    "tip.alert": "Memicu peringatan",
    "tip.noFire": "Tidak ada detektor yang menyala",
    "markets.title": "Pasar",
    "markets.col.market": "Pasar",
    "markets.col.price": "Harga",
    "markets.col.deviation": "Selisih",
    "markets.col.deviationVs": "Selisih vs {name}",
    "markets.col.time": "Waktu",
    "markets.empty": "Belum ada harga komoditas ini di wilayah ini.",
    "markets.stale": "basi",
    "feed.title": "Peringatan",
    "feed.empty": "Belum ada peringatan untuk komoditas ini.",
    "feed.firing": "Aktif",
    "feed.resolved": "Selesai",
    "feed.acked": "Ditangani {by}",
    "feed.awaiting": "Menunggu konfirmasi",
    "feed.awaitingWhy": "Belum dikirim ke Telegram: menunggu sumber atau pasar kedua",
    "feed.detectors": "Detektor: {list}",
    // The ladders' words (rules/*.yaml): waspada is always info, siaga warning, awas critical.
    "severity.info": "Waspada",
    "severity.warning": "Siaga",
    "severity.critical": "Awas",
    "health.stale": "Tidak ada data {age}",
    "age.s": "{n} dtk",
    "age.m": "{n} mnt",
    "age.h": "{n} jam",
    "age.d": "{n} hari",
    "detector.zscore": "Skor-z",
    "detector.iqr": "Pagar IQR",
    "detector.forecast": "Prakiraan",
    "detector.crossmarket": "Antarpasar",
    "detector.ceiling": "Harga acuan pemerintah (HET/HAP)",
    "detector.ceiling.HET": "HET (harga eceran tertinggi)",
    "detector.ceiling.HAP": "HAP (harga acuan penjualan)",
    "detector.stale": "Data basi",
    "detector.anomaly": "Anomali",
    "detector.alps": "ALPS (lonjakan harga, WFP)",
    "detector.ipa": "IPA (anomali harga, FAO)",
    "detector.surge": "Kenaikan serentak antarpasar",
    "why.zscore": "skor-z {score}",
    "why.iqr": "{score} skala di luar pagar IQR",
    "why.forecast": "{deviation} dari prakiraan {level} (skor {score})",
    "why.crossmarket": "skor lintas pasar {score}",
    "why.ceiling": "{deviation} terhadap {kind} {ceiling}",
    "why.anomaly": "skor anomali {score}",
    "why.alps": "ALPS {score} ({phase})",
    "why.ipa": "IPA {score} ({phase})",
    "why.surge": "pasar tengah {score}× rata-rata 30 laporannya",
    "why.other": "skor {score}",
  },
  en: {
    "page.title": "Pasarwatch — Food Price Watch",
    "brand.tagline": "Food price watch",
    "lang.toggle": "Bahasa Indonesia",
    "lang.toggle.title": "Ganti ke Bahasa Indonesia",
    "control.commodity": "Commodity",
    "control.province": "Province",
    "control.market": "Market",
    "control.allProvinces": "All provinces",
    "control.noMarket": "— choose a market —",
    "conn.connecting": "Connecting…",
    "conn.open": "Live",
    "conn.closed": "Disconnected",
    "conn.retry": "Disconnected — retry in {seconds} s",
    "conn.rate": "{rate} updates/s",
    "import.link": "Upload history",
    "demo.running": "Demo: replaying West Java PIHPS prices {from} – {to}",
    "demo.finished": "Demo ended: PIHPS prices {from} – {to} have all been replayed; history and alerts stay available",
    "demo.failed": "The demo stopped on an error; the history so far stays available",
    "control.reference": "Reference",
    "reference.avg3m": "3-month average",
    "reference.year": "a year earlier (Lebaran-aligned)",
    "reference.ceiling": "HAP/HET",
    "reference.ceiling.HAP": "HAP (reference price)",
    "reference.ceiling.HET": "HET (retail ceiling)",
    "reference.against": "vs {name} {level}",
    "reference.unknown.avg3m": "No 3-month average yet: needs prices on 20 days within the last 91",
    "reference.unknown.year": "No prices a year earlier at the same point of the season",
    "reference.unknown.ceiling": "This commodity has no HAP/HET",
    "map.subtitle.reference": "Latest price (province median) against its {name}",
    "chart.legend.adaptive": "Detectors' adaptive level",
    "chart.legend.forecast": "Forecast (95% interval)",
    "odds.title": "Odds within {days} reporting days",
    "odds.above": "Passing the {kind} {level}",
    "odds.rise": "Rising 10% or more",
    "odds.notYet": "not enough history yet",
    "odds.notYetShort": "history too short",
    "odds.caveat": "Calibrated on daily reports; this series is not reported daily, so these odds are less reliable.",
    "odds.forecast": "Forecast (80% interval)",
    "odds.horizon": "Days ahead",
    "odds.point": "Forecast",
    "odds.interval": "80% interval",
    "odds.source": "Based on",
    "odds.source.model": "model",
    "odds.source.last": "last price",
    "odds.lastNote": "last price: no model beat the last price at this horizon, so this is the last price with its interval.",
    "chart.legend.odd": "Detector band: is today's tick odd?",
    "chart.legend.reference": "Reference: {name}",
    "chart.legend.change": "Detectors firing changed",
    "chart.legend.resolved": "Alert resolved",
    "tip.band": "Detector band {lo} – {hi} (level {level})",
    "tip.resolved": "Alert resolved",
    "tip.change": "The detectors firing changed",
    "feed.against": "{deviation} vs {name} {level}",
    "summary.title": "Summary",
    "summary.alerts": "In alert",
    "summary.alerts.none": "No alerts firing.",
    "summary.alerts.count": "{count} alerts",
    "summary.movers": "Biggest movers (week on week)",
    "summary.movers.none": "No prices from a week ago yet.",
    "summary.alps": "ALPS phase",
    "summary.alps.none": "None yet: ALPS needs a year of history",
    "summary.national": "National",
    "summary.crisis": "Crisis criterion (Badan Pangan draft)",
    "summary.crisis.rule": "{low} – {high} above the reference (HAP/HET or 3-month average) for {days} days",
    "summary.crisis.met": "met: {threshold} above the {name} for {days} days (since {since})",
    "summary.crisis.watch": "watching: {threshold} above the {name} for {days} days so far",
    "summary.crisis.no": "not met",
    "summary.freshness": "Data freshness",
    "summary.freshness.entry": "newest {time} ({age} ago), {count} markets",
    "summary.loading": "Loading…",
    "phase.normal": "normal",
    "phase.stress": "stress",
    "phase.alert": "alert",
    "phase.crisis": "crisis",
    "map.title": "Price map",
    "map.noData": "no data",
    "map.tooltip.markets": "{count} markets",
    "map.tooltip.alerts": "{count} alerts firing",
    "map.credit": "Province boundaries: Indonesia GeoJSON & TopoJSON Maps (38 Provinces), CC BY 4.0",
    "chart.title": "Price chart",
    "chart.choose": "Choose a market to see its prices.",
    "chart.empty": "No prices for this series yet.",
    "chart.points": "{count} points",
    "chart.legend.price": "Price",
    "chart.legend.quarantined": "Quarantined",
    "chart.legend.alert": "Raised an alert",
    "tip.fired": "Detectors that fired:",
    "tip.quarantined": "Quarantined: not learned from",
    "tip.alert": "Raised an alert",
    "tip.noFire": "No detector fired",
    "markets.title": "Markets",
    "markets.col.market": "Market",
    "markets.col.price": "Price",
    "markets.col.deviation": "Difference",
    "markets.col.deviationVs": "Difference vs {name}",
    "markets.col.time": "Time",
    "markets.empty": "No prices for this commodity here yet.",
    "markets.stale": "stale",
    // Titles of the shipped rules (rules/*.yaml); their `summary` is in Indonesian only.
    "rule.harga-menyimpang": "One market's price is far from the others: check the entry or local manipulation",
    "rule.pasar-lebih-mahal": "One market stays dearer than the others in its region",
    "rule.kenaikan-tajam": "Sharp rise above the usual level",
    "rule.lonjakan-musiman": "Price far above its trend and season (ALPS indicator)",
    "rule.kenaikan-nasional": "National price rise above the usual level",
    "rule.di-atas-het": "Price above the legal retail ceiling (HET)",
    "rule.di-atas-hap": "Price above the government reference price (HAP)",
    "rule.data-terhenti": "Market stopped sending prices",
    "rule.kriteria-krisis": "Price above its HAP/HET for 15 days (Badan Pangan's draft crisis criterion)",
    "rule.kenaikan-serentak": "Prices rising together across this region's markets, or past the HAP well above usual: watch for a surge",
    "rule.peluang-lewat-hap": "Price likely to pass its HAP/HET within 14 days",
    "rule.peluang-naik-10": "Price likely to rise 10% or more within 14 days",
    "feed.title": "Alerts",
    "feed.empty": "No alerts for this commodity yet.",
    "feed.firing": "Firing",
    "feed.resolved": "Resolved",
    "feed.acked": "Acknowledged by {by}",
    "feed.awaiting": "Awaiting confirmation",
    "feed.awaitingWhy": "Not sent to Telegram yet: waiting for a second source or market",
    "feed.detectors": "Detectors: {list}",
    "severity.info": "Info",
    "severity.warning": "Warning",
    "severity.critical": "Critical",
    "health.stale": "No data for {age}",
    "age.s": "{n} s",
    "age.m": "{n} min",
    "age.h": "{n} h",
    "age.d": "{n} days",
    "detector.zscore": "Z-score",
    "detector.iqr": "IQR fences",
    "detector.forecast": "Forecast",
    "detector.crossmarket": "Cross-market",
    "detector.ceiling": "Government price (HET/HAP)",
    "detector.ceiling.HET": "Legal retail ceiling (HET)",
    "detector.ceiling.HAP": "Reference price (HAP)",
    "detector.stale": "Stale feed",
    "detector.anomaly": "Anomaly",
    "detector.alps": "ALPS (price spike, WFP)",
    "detector.ipa": "IPA (price anomaly, FAO)",
    "detector.surge": "Surge across markets",
    "why.zscore": "z-score {score}",
    "why.iqr": "{score} scales beyond the IQR fences",
    "why.forecast": "{deviation} from the forecast {level} (score {score})",
    "why.crossmarket": "cross-market score {score}",
    "why.ceiling": "{deviation} against the {kind} {ceiling}",
    "why.anomaly": "anomaly score {score}",
    "why.alps": "ALPS {score} ({phase})",
    "why.ipa": "IPA {score} ({phase})",
    "why.surge": "median market at {score}× its own 30-report average",
    "why.other": "score {score}",
  },
};

export const LANGUAGES = ["id", "en"];
const LOCALE = { id: "id-ID", en: "en-GB" };
const GROUPING = new Intl.NumberFormat("id-ID", { maximumFractionDigits: 0 });

/** "Rp 52.000"; a plain space, not the no-break space Intl's currency style would put there. */
export function formatPrice(value) {
  if (value == null || !Number.isFinite(value)) return "–";
  return "Rp " + GROUPING.format(value);
}

/** Axis labels have no room for the currency. */
export function formatAmount(value) {
  return GROUPING.format(value);
}

export class I18n {
  constructor(lang) {
    this.lang = LANGUAGES.includes(lang) ? lang : "id";
    this.dateFormats = new Map();
    this.percentFormat = new Intl.NumberFormat(LOCALE[this.lang], {
      style: "percent", maximumFractionDigits: 0, signDisplay: "exceptZero",
    });
  }

  get locale() {
    return LOCALE[this.lang];
  }

  t(key, vars) {
    const text = STRINGS[this.lang][key] ?? STRINGS.id[key] ?? key;
    if (!vars) return text;
    return text.replace(/\{(\w+)\}/g, (whole, name) => (name in vars ? String(vars[name]) : whole));
  }

  /** Fills every element marked data-i18n (text) or data-i18n-title (tooltip) under root. */
  apply(root) {
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = this.t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = this.t(el.dataset.i18nTitle);
  }

  percent(fraction) {
    return fraction == null || !Number.isFinite(fraction) ? "–" : this.percentFormat.format(fraction);
  }

  /** A threshold such as 7.5%, which whole percents would misstate. */
  threshold(fraction) {
    return new Intl.NumberFormat(this.locale, { style: "percent", maximumFractionDigits: 1 }).format(fraction);
  }

  /** "1 Apr 2024" from an ISO date (a calendar day, no time zone to convert). */
  day(iso) {
    if (!iso) return "–";
    return this.dateFormat("UTC", "day").format(new Date(iso + "T00:00:00Z"));
  }

  /** Formatter for one time zone and style, cached: building Intl formatters is slow. */
  dateFormat(timeZone, style) {
    const key = timeZone + "|" + style;
    let format = this.dateFormats.get(key);
    if (!format) {
      const options = { timeZone, hourCycle: "h23" };
      if (style === "datetime") Object.assign(options, { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit" });
      if (style === "date") Object.assign(options, { day: "numeric", month: "short" });
      if (style === "day") Object.assign(options, { day: "numeric", month: "short", year: "numeric" });
      if (style === "month") Object.assign(options, { month: "short", year: "numeric" });
      if (style === "time") Object.assign(options, { hour: "2-digit", minute: "2-digit" });
      format = new Intl.DateTimeFormat(this.locale, options);
      this.dateFormats.set(key, format);
    }
    return format;
  }

  /** "14 Jul 2021 07.00 WIB": epoch seconds in a province's own time zone. */
  time(ts, zone) {
    if (ts == null) return "–";
    return this.dateFormat(zone.timezone, "datetime").format(new Date(ts * 1000)) + " " + zone.abbr;
  }

  age(seconds) {
    const s = Math.max(0, Math.round(seconds));
    if (s < 90) return this.t("age.s", { n: s });
    if (s < 90 * 60) return this.t("age.m", { n: Math.round(s / 60) });
    if (s < 36 * 3600) return this.t("age.h", { n: Math.round(s / 3600) });
    return this.t("age.d", { n: Math.round(s / 86400) });
  }

  /** The name of a reference kind; for the HAP/HET, the commodity's own kind when known. */
  referenceName(kind, ceilingKind = null) {
    if (kind === "ceiling" && ceilingKind) return this.t("reference.ceiling." + ceilingKind);
    return this.t("reference." + kind);
  }

  /**
   * A detector's name. The ceiling detector compares with the commodity's government price,
   * which is a legal cap (HET: rice, MinyaKita) or only a reference (HAP: chilli, shallots);
   * `ceilingKind` (the catalog's `ceiling_kind`) says which, so the page never calls a HAP a HET.
   */
  detector(name, ceilingKind = null) {
    const strings = STRINGS[this.lang];
    if (name === "ceiling" && ceilingKind && strings["detector.ceiling." + ceilingKind]) {
      return strings["detector.ceiling." + ceilingKind];
    }
    return strings["detector." + name] ?? name;
  }

  /** A number with the page's decimal mark ("1,5" / "1.5"). */
  number(value, digits = 1) {
    return Number.isFinite(value) ? value.toLocaleString(this.locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }) : "–";
  }

  /**
   * Why a detector fired, in the page's language, from its code and numbers (the verdict's
   * score, expected level and class), never from the server's English `reasons`.
   * context: {price, score, expected, classes, ceilingKind}.
   */
  reason(name, { price, score, expected, classes, ceilingKind }) {
    const vars = { score: this.number(score, name === "alps" || name === "ipa" ? 2 : 1) };
    if (name === "ceiling" && score > 0) {
      Object.assign(vars, { deviation: this.percent(score - 1), kind: ceilingKind || "HAP/HET", ceiling: formatPrice(price / score) });
    } else if (name === "forecast" && expected && expected.level > 0) {
      Object.assign(vars, { deviation: this.percent(price / expected.level - 1), level: formatPrice(expected.level) });
    } else if ((name === "alps" || name === "ipa") && classes && classes[name]) {
      vars.phase = this.t("phase." + classes[name]);
    } else if (!["zscore", "iqr", "crossmarket", "anomaly", "surge"].includes(name)) {
      return this.t("why.other", vars);
    }
    return this.t("why." + name, vars);
  }

  /**
   * The alert's text. In Indonesian its `message`, rendered by the server from the rule's
   * `message:` template (or from its summary when the rule has none), as Telegram sends it.
   * Rule templates are written in Indonesian, so in English (and for events without a message)
   * it is the rule's title in the page's language.
   */
  alertText(alert) {
    return (this.lang === "id" && alert.message) || this.alertTitle(alert);
  }

  /**
   * An alert's title. Rule summaries are written by operators, usually in Indonesian only; in
   * English the shipped rules have their own titles here, and a summary written as
   * "Indonesian / English" shows the half in the page's language.
   */
  alertTitle(alert) {
    const parts = (alert.summary || "").split(" / ");
    if (parts.length === 2) return parts[this.lang === "id" ? 0 : 1];
    if (this.lang !== "id" && STRINGS[this.lang]["rule." + alert.rule]) return STRINGS[this.lang]["rule." + alert.rule];
    return alert.summary || alert.rule;
  }
}
