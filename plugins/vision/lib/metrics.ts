/** Classification metrics: the engine's single implementation (engine/ml/metrics.ts), under vision's names. */
export { classificationReport, formatReport, type ClassificationReport, type ClassMetrics } from '../../../engine/ml/metrics.ts';
