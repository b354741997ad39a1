// Deterministic, realistic-looking content for an organization: apps and books, users, device serial
// numbers and the licenses already assigned to them. Everything comes from a seeded Random.

const SERIAL_PREFIXES = ['C02', 'C07', 'DMP', 'DMQ', 'F4K', 'F9F', 'FVF', 'G6T', 'GG7', 'H4T', 'DLX', 'FFM'];
const SERIAL_ALPHABET = '0123456789ABCDEFGHJKLMNPQRSTUVWXYZ'; // Apple serials avoid I and O
const FIRST_NAMES = ['ada', 'ben', 'chloe', 'david', 'emma', 'felix', 'grace', 'hugo', 'iris', 'jonas', 'kate', 'liam',
  'maya', 'noah', 'olga', 'paul', 'rosa', 'sam', 'tara', 'victor', 'wendy', 'yusuf', 'zoe'];
const LAST_NAMES = ['adams', 'baker', 'chen', 'diaz', 'evans', 'fischer', 'garcia', 'hansen', 'ito', 'jensen', 'khan',
  'lopez', 'martin', 'nguyen', 'okafor', 'patel', 'rossi', 'schmidt', 'tanaka', 'weber'];
const APP_PLATFORMS = [['iOS'], ['iOS'], ['iOS'], ['iOS', 'macOS'], ['iOS', 'macOS', 'visionOS'], ['iOS', 'tvOS'],
  ['iOS', 'watchOS'], ['macOS']];
const BOOK_PLATFORMS = ['iOS', 'macOS'];

/** Identity of the index-th organization unless the caller chose it. */
export function generateIdentity(rng, index) {
  return {
    orgName: `ORG${rng.digits(10)}`,
    locationName: `PS${String(index + 1).padStart(2, '0')}`,
    uId: `2049${rng.digits(12)}`,
    secret: rng.base64(96),
  };
}

function unique(make, count) {
  const seen = new Set();
  while (seen.size < count) seen.add(make());
  return [...seen];
}

function makeUsers(rng, count, domain) {
  const ids = unique(() => rng.uuid(), count);
  return ids.map((clientUserId, i) => {
    const roll = rng.next();
    const status = roll < 0.7 ? 'Associated' : roll < 0.9 ? 'Registered' : 'Retired';
    const user = {
      clientUserId,
      email: `${rng.pick(FIRST_NAMES)}.${rng.pick(LAST_NAMES)}${i}@${domain}`,
      inviteCode: rng.hex(32),
      status,
    };
    if (status === 'Associated' || (status === 'Retired' && rng.chance(0.5))) user.idHash = rng.base64(20);
    return user;
  });
}

function makeAssets(rng, { apps, books, freeApps }) {
  const adamIds = unique(() => String(rng.int(284000000, 1799999999)), apps + books);
  const assets = [];
  for (let i = 0; i < apps; i++) {
    assets.push({
      adamId: adamIds[i], pricingParam: 'STDQ', productType: 'App', deviceAssignable: rng.chance(0.9),
      revocable: true, supportedPlatforms: rng.pick(APP_PLATFORMS), unlimited: i >= apps - freeApps,
    });
  }
  for (let i = 0; i < books; i++) {
    // The second book is the PLUS edition of the first: Apple returns both with the same adamId.
    const adamId = i === 1 ? adamIds[apps] : adamIds[apps + i];
    assets.push({
      adamId, pricingParam: i === 1 ? 'PLUS' : 'STDQ', productType: 'Book', deviceAssignable: false,
      revocable: false, supportedPlatforms: BOOK_PLATFORMS, unlimited: false,
    });
  }
  return assets;
}

/** Which users and devices hold a license of `asset`. Retired users keep only books (irrevocable). */
function chooseHolders(rng, asset, users, serials, fraction) {
  const holders = [];
  if (asset.deviceAssignable) {
    for (const serialNumber of serials) if (rng.chance(fraction)) holders.push({ serialNumber });
  }
  const userFraction = asset.productType === 'Book' || !asset.deviceAssignable ? fraction : fraction / 4;
  for (const u of users) {
    const eligible = u.status !== 'Retired' || asset.productType === 'Book';
    if (eligible && rng.chance(userFraction)) holders.push({ clientUserId: u.clientUserId });
  }
  return holders;
}

/**
 * Fills `org` with `apps` apps (the last `freeApps` of them free/unlimited), `books` books, `users` users,
 * `devices` serial numbers, and assigns roughly `assignedFraction` of the devices (and fewer users) per asset.
 * Paid assets get a few spare licenses beyond those assigned (sometimes none).
 */
export function populate(org, rng, { apps, books, freeApps, devices, users, assignedFraction, emailDomain }) {
  if (freeApps > apps) throw new RangeError('freeApps cannot exceed apps');
  const userRecords = makeUsers(rng, users, emailDomain);
  for (const u of userRecords) org.addUser(u);
  const serials = unique(() => rng.pick(SERIAL_PREFIXES) + rng.chars(SERIAL_ALPHABET, 9), devices);
  for (const asset of makeAssets(rng, { apps, books, freeApps })) {
    const holders = chooseHolders(rng, asset, userRecords, serials, assignedFraction);
    const spare = holders.length === 0 ? rng.int(5, 50) : rng.int(0, Math.max(2, Math.ceil(holders.length / 4)));
    org.addAsset({ ...asset, totalCount: holders.length + spare });
    for (const h of holders) org.addAssignment({ adamId: asset.adamId, pricingParam: asset.pricingParam, ...h });
  }
  return { serialNumbers: serials };
}
