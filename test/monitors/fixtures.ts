/** Payloads shaped like real monitors' Execute-Webhook posts (Footlocker / SNKRS / Shopify styles). */
export function snkrsPayload(imageUrl: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    username: 'SNKRS Monitor',
    avatar_url: 'https://example.com/avatar.png',
    embeds: [
      {
        title: 'Air Jordan 1 Retro High OG "Chicago Lost & Found"',
        url: 'https://www.nike.com/launch/t/air-jordan-1-chicago',
        color: 0x2f3136,
        timestamp: '2026-11-28T10:00:00.000Z',
        thumbnail: { url: imageUrl },
        fields: [
          { name: '💰 Price', value: '$180', inline: true },
          { name: 'SKU', value: 'DZ5485-612', inline: true },
          { name: 'Release Date', value: '<t:1764324000:F>', inline: true },
          { name: 'Sizes', value: '[8](https://atc.example/8) | [8.5](https://atc.example/8.5)\n[9](https://atc.example/9) | [10](https://atc.example/10)', inline: false },
          { name: 'Region', value: 'US', inline: true },
        ],
        footer: { text: 'SNKRS Monitor • v3' },
      },
    ],
    ...overrides,
  };
}

export function shopifyPayload(imageUrl: string): Record<string, unknown> {
  return {
    username: 'Shopify Restocks',
    embeds: [
      {
        title: 'adidas Samba OG Cloud White',
        url: 'https://kith.com/products/samba',
        image: { url: imageUrl },
        fields: [
          { name: 'Store', value: 'Kith', inline: true },
          { name: 'Retail Price', value: '€100,00', inline: true },
          { name: 'Style Code', value: 'B75806', inline: true },
          { name: 'Sizes [ATC]', value: 'US 8 (3), US 9 (1), US 10.5 (2)', inline: false },
        ],
      },
    ],
  };
}

export function footlockerPayload(imageUrl: string): Record<string, unknown> {
  return {
    content: 'New restock!',
    embeds: [
      {
        author: { name: 'Nike Dunk Low Retro Panda' },
        description: 'Footlocker EU restock',
        image: { url: imageUrl },
        fields: [
          { name: '**Lowest Ask**', value: '£135', inline: true },
          { name: 'PID', value: '314207-100', inline: true },
          { name: 'Stock', value: '42 x3\n43 x1', inline: true },
          { name: 'Country', value: 'GB', inline: true },
        ],
      },
    ],
  };
}
