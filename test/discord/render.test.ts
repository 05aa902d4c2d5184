/**
 * Rendering replies for Discord: embeds from title/fields/colour, PNGs as attachments referenced by the
 * embed, buttons in rows of five, Discord's size limits applied, and errors as catalogue sentences.
 */
import { describe, expect, it } from 'vitest';
import { EngineError, reply } from '../../engine/index.ts';
import { errorText, renderReplies, renderReply } from '../../bot/discord/render.ts';

const png = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

describe('GIVEN replies THEN they render within Discord limits', () => {
  it('a reply with fields, images and actions becomes content + embed + files + button rows', () => {
    const r = renderReply(
      reply('hello', {
        title: 'T',
        color: 0x123456,
        fields: [{ name: 'A', value: '1', inline: false }, { name: '', value: '' }],
        images: [{ name: 'heat map.png', png }, { name: 'heat map.png', png }, { name: 'x', png }],
        actions: Array.from({ length: 7 }, (_, i) => ({ id: `p:a:${i}`, label: `L${i}`, style: 'primary' as const })),
      }),
    );
    expect(r.content).toBe('hello');
    expect(r.embeds).toEqual([{ title: 'T', color: 0x123456, fields: [{ name: 'A', value: '1', inline: false }, { name: '\u200b', value: '\u200b', inline: true }], image: { url: 'attachment://heat_map.png' } }]);
    expect(r.files.map((f) => f.name)).toEqual(['heat_map.png', 'heat_map-2.png', 'x.png']);
    expect(r.components.map((row) => row.components.length)).toEqual([5, 2]);
    expect(r.components[0]?.toJSON().components[0]).toMatchObject({ custom_id: 'p:a:0', label: 'L0', style: 1, type: 2 });
  });

  it('long text moves to the embed description; too many fields, long values and 100+ char ids are clipped or dropped', () => {
    const long = renderReply(reply('x'.repeat(3000)));
    expect(long.content).toBe('');
    expect(long.embeds[0]?.description).toHaveLength(3000);
    const huge = renderReply(
      reply('y', {
        fields: Array.from({ length: 30 }, (_, i) => ({ name: `f${i}`, value: 'v'.repeat(2000) })),
        actions: [{ id: 'z'.repeat(101), label: 'too long id' }, { id: 'ok:1', label: 'l'.repeat(120) }],
      }),
    );
    expect(huge.embeds[0]?.fields).toHaveLength(25);
    expect(huge.embeds[0]?.fields?.[0]?.value).toHaveLength(1024);
    const buttons = huge.components[0]?.toJSON().components ?? [];
    expect(buttons).toHaveLength(1);
    expect((buttons[0] as { label: string }).label).toHaveLength(80);
  });

  it('several replies (hype + brand) become one message with one embed each', () => {
    const r = renderReplies([reply('a', { title: 'Hype', images: [{ name: 'cam.png', png }] }), reply('b', { title: 'Brand', images: [{ name: 'cam.png', png }] })]);
    expect(r.content).toBe('a\n\nb');
    expect(r.embeds.map((e) => [e.title, e.image?.url])).toEqual([
      ['Hype', 'attachment://cam.png'],
      ['Brand', 'attachment://cam-2.png'],
    ]);
  });

  it('errors are the catalogue sentence plus the specific message, internals never', () => {
    expect(errorText(new EngineError('RATE_LIMITED', 'try again in 3s.'))).toBe('⚠️ Slow down a little. try again in 3s.');
    expect(errorText(new EngineError('INTERNAL', 'Something went wrong on our side.'))).toBe('⚠️ Something went wrong on our side.');
  });
});
