# Autobahn's echo server with permessage-deflate accepted (`wstest -m echoserver` offers no
# option for it). Python 2.7, from the autobahntestsuite install (scripts/setup).
# Usage: python2.7 echo_deflate.py ws://127.0.0.1:9302
import sys

from twisted.internet import reactor
from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol, listenWS
from autobahn.websocket.compress import PerMessageDeflateOffer, PerMessageDeflateOfferAccept


class Echo(WebSocketServerProtocol):
    def onMessage(self, payload, isBinary):
        self.sendMessage(payload, isBinary)


def accept(offers):
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)


factory = WebSocketServerFactory(sys.argv[1])
factory.protocol = Echo
factory.setProtocolOptions(perMessageCompressionAccept=accept)
listenWS(factory)
reactor.run()
