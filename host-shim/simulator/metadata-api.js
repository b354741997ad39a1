// The content metadata lookup (`urls.contentMetadataLookup`, Apple's MZStorePlatform lookup): each asset's name and
// icon. Names are made up from the adam id (the same id always gets the same name); the icon is an SVG data URL
// (a coloured tile with the name's initials), so it needs no route of its own and loads in any page.
export const LOOKUP_PATH = '/WebObjects/MZStorePlatform.woa/wa/lookup';

const ADJECTIVES = ['Bright', 'Clever', 'Curious', 'Happy', 'Quick', 'Brave', 'Calm', 'Lucky', 'Merry', 'Swift', 'Sunny', 'Wise'];
const APP_NOUNS = ['Math', 'Atlas', 'Notes', 'Sketch', 'Reader', 'Lab', 'Piano', 'Code', 'Words', 'Globe', 'Camera', 'Planner'];
const BOOK_NOUNS = ['Stories', 'Poems', 'Fables', 'Tales', 'Journeys', 'Letters'];
const COLOURS = ['#0a84ff', '#30d158', '#ff9f0a', '#ff375f', '#bf5af2', '#64d2ff', '#ffd60a', '#ac8e68'];

/** The made-up name and icon of an asset of the simulator. */
export function assetMetadata(asset) {
  const n = Number(asset.adamId);
  const book = asset.productType === 'Book';
  const nouns = book ? BOOK_NOUNS : APP_NOUNS;
  const name = `${ADJECTIVES[n % ADJECTIVES.length]} ${nouns[Math.floor(n / ADJECTIVES.length) % nouns.length]}${book ? '' : ' App'}`;
  const initials = name.split(' ').slice(0, 2).map((word) => word[0]).join('');
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">`
    + `<rect width="64" height="64" rx="14" fill="${COLOURS[n % COLOURS.length]}"/>`
    + `<text x="32" y="41" font-family="sans-serif" font-size="24" font-weight="bold" fill="#fff" text-anchor="middle">${initials}</text></svg>`;
  return {
    id: asset.adamId,
    name,
    kind: book ? 'ebook' : 'software',
    artwork: { url: `data:image/svg+xml,${encodeURIComponent(svg)}`, width: 64, height: 64 },
  };
}

/** `GET …/lookup?id=1,2,3`: `{ results: { [adamId]: { id, name, kind, artwork: { url, width, height } } } }` for every
 *  asset of any location the ids name (unknown ids are left out, as Apple does). */
export function lookup(ctx, { query }) {
  const ids = new Set(String(query.id ?? '').split(',').filter(Boolean));
  const results = {};
  for (const org of ctx.organizations.values()) {
    for (const asset of org.assets) {
      if (ids.has(asset.adamId) && !results[asset.adamId]) results[asset.adamId] = assetMetadata(asset);
    }
  }
  return { results };
}
