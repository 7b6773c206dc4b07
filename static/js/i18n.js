// The page's language: its strings (static/js/strings.js) in Bahasa Indonesia (default) or
// English, and the number and time formats that go with them. Prices always use id-ID grouping
// ("Rp 52.000") because that is how rupiah amounts are read, whichever language the labels are in.

import { STRINGS } from "./strings.js";

export { STRINGS };

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
