/**
 * Upload safety with the REAL nsfwjs head (shipped inside the nsfwjs package): it loads, classifies a
 * generated (non-explicit) image into 5 probabilities, does not leak tensors, and refuses non-images.
 * Then, in the bot, an image the checker flags is refused before analysis and noted in the mod log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import sharp from 'sharp';
import { NsfwSafety, NSFW_CLASSES, type UploadSafety } from '../../bot/discord/safety.ts';
import { snowflake } from './fake-discord.ts';
import { makePng, startHarness, type Harness } from './testkit.ts';

/** A sneaker-ish drawing: a dark sole and a coloured upper on white. */
async function sneakerPng(): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256"><rect width="256" height="256" fill="#fff"/>
    <path d="M30 170 Q60 110 120 120 L170 90 Q200 120 230 150 L230 185 L30 185 Z" fill="#c0392b"/>
    <rect x="25" y="185" width="210" height="18" fill="#222"/></svg>`;
  return sharp(Buffer.from(svg)).png().toBuffer();
}

describe('GIVEN the nsfwjs head', () => {
  const safety = new NsfwSafety();
  afterAll(async () => {
    await safety.dispose();
  });

  it('THEN it loads from the package and scores a generated image as not explicit, without leaking tensors', async () => {
    const { getTf } = await import('../../engine/ml/runtime.ts');
    const tf = await getTf();
    await safety.load();
    const before = tf.memory().numTensors;
    const verdict = await safety.check(await sneakerPng());
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(verdict.scores)).toEqual([...NSFW_CLASSES]);
    const sum = Object.values(verdict.scores).reduce((a, b) => a + b, 0);
    expect(sum).toBeCloseTo(1, 3);
    expect(verdict.explicit).toBe(false);
    expect(verdict.scores.porn + verdict.scores.hentai).toBeLessThan(safety.threshold);
  });

  it('THEN a non-image is NOT_AN_IMAGE, not a crash', async () => {
    await expect(safety.check(Buffer.from('definitely not a picture'))).rejects.toMatchObject({ code: 'NOT_AN_IMAGE' });
  });
});

/** A checker that flags one exact payload as explicit (the real head is proven above). */
class FlagBytes implements UploadSafety {
  constructor(private readonly flagged: Buffer) {}
  async check(image: Uint8Array) {
    const explicit = Buffer.from(image).equals(this.flagged);
    return { explicit, scores: { drawing: 0, hentai: 0.05, neutral: explicit ? 0.02 : 0.95, porn: explicit ? 0.93 : 0, sexy: 0 } };
  }
}

describe('GIVEN the bot with an upload safety check', () => {
  let h: Harness;
  let flagged: Buffer;
  beforeAll(async () => {
    flagged = await makePng([250, 200, 180], 24);
    h = await startHarness({ bot: { safety: new FlagBytes(flagged) } });
  });
  afterAll(async () => {
    await h?.close();
  });

  it('WHEN a flagged photo is used THEN the command never runs, the user is told ephemerally, and the mod log gets a note', async () => {
    const runs: string[] = [];
    h.engine.events.on('command:run', (name) => runs.push(name));
    const url = h.fake.addCdnFile('x.png', flagged);
    const att = { id: snowflake(), filename: 'x.png', size: flagged.length, url, proxy_url: url, content_type: 'image/png' };
    const { token } = h.fake.interact({
      type: 2,
      user: h.member,
      guild: h.guild,
      data: { id: snowflake(), name: 'scan', type: 1, options: [{ name: 'image', type: 11, value: att.id }], resolved: { attachments: { [att.id]: att } } },
    });
    const follow = await h.fake.waitFor(() => h.fake.requests.find((r) => r.method === 'POST' && r.path === `/webhooks/${h.fake.applicationId}/${token}`), 10_000, 'refusal');
    expect(follow.body).toMatchObject({ flags: 64 });
    expect((follow.body as { content: string }).content).toContain('looks explicit');
    const modlog = h.guild.channels[1]?.id ?? '';
    const note = await h.fake.waitFor(() => h.fake.botMessages(modlog)[0], 10_000, 'mod log note');
    expect(note.content).toContain(`<@${h.member.id}>`);
    expect(note.content).toContain('porn 0.93');
    expect(runs).toEqual([]);
  });

  it('WHEN a flagged photo is mentioned THEN hype/brand do not run either; a clean photo still works', async () => {
    const runs: string[] = [];
    h.engine.events.on('command:run', (name) => runs.push(name));
    const channel = h.guild.channels[0]?.id ?? '';
    const url = h.fake.addCdnFile('y.png', flagged);
    const bad = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}>`, mentionBot: true, attachments: [{ name: 'y.png', url, contentType: 'image/png', size: flagged.length }] });
    const refusal = await h.fake.waitFor(() => h.fake.botMessages(channel).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === bad.id), 10_000, 'mention refusal');
    expect(refusal.content).toContain('looks explicit');
    expect(runs).toEqual([]);
    const clean = await makePng([20, 20, 20], 24);
    const cleanUrl = h.fake.addCdnFile('z.png', clean);
    const good = h.fake.postMessage({ user: h.member, guild: h.guild, content: `<@${h.fake.botUser.id}>`, mentionBot: true, attachments: [{ name: 'z.png', url: cleanUrl, contentType: 'image/png', size: clean.length }] });
    await h.fake.waitFor(() => h.fake.botMessages(channel).find((m) => (m.message_reference as { message_id?: string } | undefined)?.message_id === good.id), 10_000, 'clean answer');
    expect(runs.sort()).toEqual(['brand', 'hype']);
  });
});
