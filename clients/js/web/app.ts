import { Client } from "../src/index.js"; console.log(Client);
