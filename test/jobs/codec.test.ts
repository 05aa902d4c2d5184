import { describe, expect, it } from 'vitest';
import { decodeCheckpoint, decodeError, decodeProgress, encodeCheckpoint, encodeError, encodeProgress, unwrapJobData } from '../../jobs/codec.ts';
import { maxJobsPerGuildFromEnv, parseQueueConcurrency, queueNameFor } from '../../jobs/connection.ts';

describe('job codecs and settings', () => {
  it('GIVEN an engine error THEN it round-trips through BullMQ failedReason; unknown reasons become INTERNAL', () => {
    expect(decodeError(encodeError('BAD_INPUT', 'n: too small\nsecond line'))).toEqual({ code: 'BAD_INPUT', message: 'n: too small\nsecond line' });
    expect(decodeError('TypeError: x is undefined at /app/secret.ts:3').code).toBe('INTERNAL');
    expect(decodeError('job stalled more than allowable limit')).toEqual({ code: 'UNAVAILABLE', message: 'The worker running this job died too many times.' });
  });

  it('GIVEN progress THEN epoch/loss/metric/etaS are flattened for the dashboard and read back', () => {
    const stored = encodeProgress({ stage: 'epoch 2/10', fraction: 0.2, metrics: { epoch: 2, loss: 0.5, metric: 0.8, etaS: 12, lr: 0.01 } });
    expect(stored).toMatchObject({ stage: 'epoch 2/10', fraction: 0.2, epoch: 2, loss: 0.5, metric: 0.8, etaS: 12 });
    expect(decodeProgress(stored)).toEqual({ stage: 'epoch 2/10', fraction: 0.2, metrics: { epoch: 2, loss: 0.5, metric: 0.8, etaS: 12, lr: 0.01 } });
    expect(decodeProgress(40)).toEqual({ fraction: 0.4 });
    expect(decodeProgress(null)).toBeUndefined();
  });

  it('GIVEN checkpoints as bytes or objects THEN they round-trip', () => {
    const bytes = new Uint8Array([1, 2, 250]);
    expect(decodeCheckpoint(JSON.parse(JSON.stringify(encodeCheckpoint(bytes))))).toEqual(bytes);
    expect(decodeCheckpoint(encodeCheckpoint({ epoch: 3 }))).toEqual({ epoch: 3 });
  });

  it('GIVEN job data THEN envelopes unwrap and raw payloads pass through', () => {
    expect(unwrapJobData({ payload: { n: 1 }, meta: { guildId: 'g' } })).toEqual({ payload: { n: 1 }, meta: { guildId: 'g' } });
    expect(unwrapJobData({ n: 1 })).toEqual({ payload: { n: 1 }, meta: {} });
  });

  it('GIVEN settings THEN queue concurrency and guild caps parse, bad values are ignored', () => {
    expect(parseQueueConcurrency('training.train=1, training.trial = 2,bad,x=0')).toEqual({ 'training.train': 1, 'training.trial': 2 });
    expect(maxJobsPerGuildFromEnv({ SOLESCOPE_MAX_JOBS_PER_GUILD: '4' })).toBe(4);
    expect(maxJobsPerGuildFromEnv({ SOLESCOPE_MAX_JOBS_PER_GUILD: 'many' })).toBe(2);
    expect(queueNameFor('vision:train job')).toBe('vision-train-job');
  });
});
