/**
 * The exploration plugin: the study's EDA as pictures in chat.
 *
 * - `mean-shoe`: the average sneaker of a selection, with eigen-shoes on request;
 * - `cluster-map`: a 2-D map (t-SNE, UMAP or PCA) of CNN or RGB features with thumbnails, K-means with K
 *   chosen by silhouette analysis and the elbow, and the per-cluster silhouette plot;
 * - `eda`: RGB intensity distributions per class, the raw width/height pairplot, brand and class counts;
 * - `hype-dna`: mutual information between a photo's RGB distribution and the hyped / not-hyped means.
 *
 * Every command selects images with the same filters, reports progress while it streams pixels, and caches
 * its reply in the store keyed by (selection, parameters, model, preprocessing version).
 */
import { definePlugin } from '../../engine/index.ts';
import { clusterMap } from './commands/cluster-map.ts';
import { eda } from './commands/eda.ts';
import { hypeDna } from './commands/hype-dna.ts';
import { meanShoe } from './commands/mean-shoe.ts';
import { exploreJob, queuedWhenLong } from './lib/as-job.ts';

export default definePlugin({
  name: 'explore',
  description: "The study's exploration: mean shoe, eigen-shoes, cluster maps, EDA charts, hype DNA",
  // Selection commands go through the job queue when the selection is large (see lib/as-job.ts).
  commands: [queuedWhenLong(meanShoe), queuedWhenLong(clusterMap), queuedWhenLong(eda), hypeDna],
  jobs: [exploreJob],
});
