/** Classification metrics: the engine's single implementation (engine/ml/metrics.ts), under vision's names. */
export { bootstrapInterval, classificationReport, formatRange, formatReport, type BootstrapInterval, type ClassificationReport, type ClassMetrics } from '../../../engine/ml/metrics.ts';
