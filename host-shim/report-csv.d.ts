import type { AppReportRow, AssignmentReportPage, PricingParam, ReportPageQuery } from 'vpp-license-engine';

/** What the CSV writers read of an engine. */
export interface ReportEngine {
  appReport(accountId: string | null): AppReportRow[];
  assignmentReport(accountId: string | null, query?: ReportPageQuery): AssignmentReportPage;
}

export interface CsvOptions {
  /** Prefix text fields starting with =, +, -, @, tab or CR with an apostrophe (default true): spreadsheets would run them. */
  guardFormulas?: boolean;
}

export interface ReportCsvOptions extends CsvOptions {
  /** The app's name for the `appName` column (host-supplied metadata); empty when it returns undefined. */
  appName?: (adamId: string) => string | undefined;
}

/** One RFC 4180 field (quoted when it holds a comma, quote, CR or LF; null and undefined are empty). */
export function csvField(value: string | number | boolean | null | undefined, options?: CsvOptions): string;
/** One CRLF-terminated CSV line. */
export function csvLine(values: ReadonlyArray<string | number | boolean | null | undefined>, options?: CsvOptions): string;

/** Columns: accountId, adamId, appName, pricingParam, productType, purchased, usedByUs, usedByOthers, pending, available
 *  ("unlimited" for free apps). */
export function appReportCsv(engine: ReportEngine, accountId: string | null, options?: ReportCsvOptions): AsyncGenerator<string, void, void>;

/** Columns: accountId, adamId, appName, pricingParam, serialNumber, clientUserId, assignedBy ("us" | "other"),
 *  confirmedSince (ISO 8601, empty when unknown), policyId. One chunk per page of `pageSize` rows (default 1000, at most 10000). */
export function assignmentReportCsv(
  engine: ReportEngine,
  accountId: string | null,
  options?: ReportCsvOptions & { pageSize?: number; adamId?: string; pricingParam?: PricingParam },
): AsyncGenerator<string, void, void>;
