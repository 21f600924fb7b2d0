export { Host, openHost, sourceOptionsFor } from './host';
